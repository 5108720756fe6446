package raftfsm

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// BenchmarkApplyKinds applies each command kind the delivery and IMAP
// paths send most, in raft batches as hashicorp/raft hands them to
// ApplyBatch (BatchingFSM; the node runs MaxAppendEntries 512, so a batch
// holds up to 512 entries — 32 and 256 here), on a state database on
// disk without fsync (the Raft log, not the state, is what a node syncs):
//
//   - deliver: Deliver of a realistic 10 KiB message (text part, random
//     base64 attachment, a unique Message-ID) compressed by the proposer
//     as node/mail does, one recipient with its dedupe key;
//   - store: one STORE +FLAGS/-FLAGS (\Flagged) of one UID per command,
//     as a client flagging one message at a time, over a mailbox of 4,096
//     realistic messages;
//   - expunge: one UID EXPUNGE of one \Deleted message per command, each
//     removing the message's last blob reference (blob, header and parsed
//     rows deleted).
//
// It reports commands/s, MB/s of command bytes applied, and cpu-µs per
// command (the process's CPU, the untimed command building taken out).
func BenchmarkApplyKinds(b *testing.B) {
	for _, batch := range []int{32, 256} {
		for _, kind := range []string{"deliver", "store", "expunge"} {
			b.Run(fmt.Sprintf("kind=%s/batch=%d", kind, batch), func(b *testing.B) { benchApplyKind(b, kind, batch) })
		}
	}
}

func benchApplyKind(b *testing.B, kind string, batch int) {
	h := newHarness(b)
	h.onDisk(b)
	user := h.setup("a@example.test")[0]
	inbox := h.mailbox(user, "INBOX").Id
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	realistic := func() *commandpb.Blob {
		data := realisticMessage(rng, seq, 10<<10)
		seq++
		sum := sha256.Sum256(data)
		return &commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: &storagepb.ParsedMessage{}}
	}
	entry := func(c *commandpb.Command) *raft.Log {
		if c.TimeUnixNano == 0 {
			c.TimeUnixNano = h.now + int64(h.index)*1000
		}
		enc, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		h.index++
		return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: enc}
	}
	apply := func(logs []*raft.Log) {
		for _, r := range h.f.ApplyBatch(logs) {
			rsp := r.(*Response)
			if rsp.Err != nil || rsp.Result.GetCode() != OK {
				b.Fatalf("apply %s: %v", kind, rsp)
			}
			if kind == "deliver" && rsp.Result.Deliveries[0].Code != OK {
				b.Fatalf("deliver: %v", rsp)
			}
			if kind != "deliver" && len(rsp.Result.Uids) != 1 {
				b.Fatalf("%s changed %d messages, want 1", kind, len(rsp.Result.Uids))
			}
		}
	}
	// The mailbox the store and expunge commands work on, filled untimed.
	const mailboxSize = 4096
	fill := func(n int, flags ...string) {
		for done := 0; done < n; {
			logs := make([]*raft.Log, 0, 256)
			for ; done < n && len(logs) < 256; done++ {
				logs = append(logs, entry(appendMsg(user, inbox, realistic(), flags...)))
			}
			for _, r := range h.f.ApplyBatch(logs) {
				if rsp := r.(*Response); rsp.Err != nil || rsp.Result.GetCode() != OK {
					b.Fatalf("fill: %v", rsp)
				}
			}
		}
	}
	next := 0 // commands built so far
	var mk func() *commandpb.Command
	switch kind {
	case "deliver":
		mk = func() *commandpb.Command {
			key := sha256.Sum256(fmt.Append(nil, "dedupe", next))
			return deliver(realistic(), &commandpb.Recipient{Email: "a@example.test", DedupeKey: key[:]})
		}
	case "store":
		fill(mailboxSize)
		mk = func() *commandpb.Command {
			uid := uint32(next%mailboxSize) + 1
			op := commandpb.FlagOp_FLAG_OP_ADD
			if (next/mailboxSize)%2 == 1 {
				op = commandpb.FlagOp_FLAG_OP_REMOVE
			}
			return cmd(store(user, inbox, uidRange(uid, uid), op, `\Flagged`))
		}
	case "expunge":
		// Every command removes one message: the mailbox holds b.N ×
		// batch of them (realistic bodies, \Deleted), filled untimed.
		fill(b.N*batch, `\Deleted`)
		mk = func() *commandpb.Command {
			uid := uint32(next) + 1
			return cmd(&commandpb.Expunge{UserId: user, MailboxId: inbox, Uids: uidRange(uid, uid)})
		}
	}
	var bytes int64
	var buildCPU time.Duration
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c0 := cpuTime()
		logs := make([]*raft.Log, batch)
		for j := range logs {
			logs[j] = entry(mk())
			bytes += int64(len(logs[j].Data))
			next++
		}
		buildCPU += cpuTime() - c0
		b.StartTimer()
		apply(logs)
	}
	b.StopTimer()
	n := float64(b.N * batch)
	b.ReportMetric(n/b.Elapsed().Seconds(), "commands/s")
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64((cpuTime()-cpu0-buildCPU).Microseconds())/n, "cpu-µs/command")
}
