package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// BenchmarkApplyDeliver applies raft batches of 256 Deliver commands, each a
// distinct 4 KiB message for one recipient with a dedupe key, and reports
// commands per second.
func BenchmarkApplyDeliver(b *testing.B) { benchApplyDeliver(b, false, false) }

// BenchmarkApplyDeliverRealistic is BenchmarkApplyDeliver with realistic
// 10 KiB messages: a text part and a random base64 attachment (which zstd
// cannot shrink much), a unique Message-ID each, compressed by the
// proposer as node/mail does.
func BenchmarkApplyDeliverRealistic(b *testing.B) { benchApplyDeliver(b, false, true) }

// BenchmarkApplyDeliverJournal is BenchmarkApplyDeliver with the archive
// journal on and off, alternating within one run: the journal's CPU and
// write cost per delivery, without Raft or fsync around it.
func BenchmarkApplyDeliverJournal(b *testing.B) {
	b.Run("journal=on", func(b *testing.B) { benchApplyDeliver(b, false, false) })
	b.Run("journal=off", func(b *testing.B) { benchApplyDeliver(b, true, false) })
}

func benchApplyDeliver(b *testing.B, noJournal, realistic bool) {
	h := newHarness(b)
	if realistic {
		h.onDisk(b)
	}
	h.f.opts.NoJournal = noJournal
	h.setup("a@example.test")
	const batch = 256
	body := make([]byte, 4096)
	for i := range body {
		body[i] = "abcdefghij klmnopqrstuvwxyz\r\n"[i*7%29]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(n int) *raft.Log {
		data := append([]byte(fmt.Sprintf("Message-Id: <%d@bench>\r\n", n)), body...)
		data = data[:4096]
		if realistic {
			data = realisticMessage(rng, n, 10<<10)
		}
		sum := sha256.Sum256(data)
		key := sha256.Sum256([]byte(fmt.Sprint("dedupe", n)))
		// As node/mail proposes it: compressed once by the proposer.
		c := deliver(&commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: &storagepb.ParsedMessage{}},
			&commandpb.Recipient{Email: "a@example.test", DedupeKey: key[:]})
		c.TimeUnixNano = h.now + int64(n)*1000
		enc, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		h.index++
		return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: enc}
	}
	n := 0
	cpu0 := cpuTime()
	b.ResetTimer()
	var buildCPU time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c0 := cpuTime()
		logs := make([]*raft.Log, batch)
		for j := range logs {
			logs[j] = mk(n)
			n++
		}
		buildCPU += cpuTime() - c0
		b.StartTimer()
		for _, r := range h.f.ApplyBatch(logs) {
			if rsp := r.(*Response); rsp.Err != nil || rsp.Result.Deliveries[0].Code != OK {
				b.Fatalf("apply: %v", rsp)
			}
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "commands/s")
	// CPU time of the process (this benchmark's goroutines and pebble's)
	// per command, the untimed command building (random bodies, the
	// proposer's compression) taken out: on a shared machine it moves far
	// less than wall time when other processes run.
	b.ReportMetric(float64((cpuTime()-cpu0-buildCPU).Microseconds())/float64(b.N*batch), "cpu-µs/command")
}

// onDisk moves the harness to a state database on disk (no fsync), as a
// node runs: MemFS's growing files cost more than the apply itself once
// bodies are 10 KiB.
func (h *harness) onDisk(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	h.db = db
	if h.f, err = New(db, Options{Logger: quiet}); err != nil {
		b.Fatal(err)
	}
}

// realisticMessage is a size-byte MIME message: headers, a text part and a
// random base64 attachment.
func realisticMessage(rng *rand.Rand, n, size int) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "From: a@example.test\r\nTo: b@example.test\r\nSubject: bench %d\r\nMessage-ID: <%d.%d@bench>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello, this is message %d.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n", n, n, rng.Uint64(), n)
	raw := make([]byte, 57)
	for buf.Len() < size-8 {
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		buf.WriteString(base64.StdEncoding.EncodeToString(raw))
		buf.WriteString("\r\n")
	}
	buf.WriteString("--b--\r\n")
	return buf.Bytes()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
