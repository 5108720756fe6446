package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// runBackup streams a node's state into FILE (written beside it and renamed
// into place once complete, so FILE is never a partial backup).
func runBackup(args []string) error {
	a := newAdminFlags("backup")
	out := a.fs.String("out", "", "file to write the backup to")
	stale := a.fs.Bool("allow-stale", false, "back up the node's local state even when it cannot reach a leader")
	*a.timeout = 24 * time.Hour
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("usage: continuum backup --out FILE [--server ADDR]")
	}
	c, ctx, done, err := a.client()
	if err != nil {
		return err
	}
	defer done()
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	stream, err := c.Backup(ctx, &adminpb.BackupRequest{AllowStale: *stale})
	if err != nil {
		return rpcError(err, *a.server)
	}
	progress := isTerminal(os.Stderr)
	var total int64
	var first, last *adminpb.BackupChunk
	lastPrint := time.Now()
	for {
		ch, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rpcError(err, *a.server)
		}
		if first == nil {
			first = ch
		}
		if ch.Done {
			last = ch
			continue
		}
		if _, err := tmp.Write(ch.Data); err != nil {
			return err
		}
		total += int64(len(ch.Data))
		if progress && time.Since(lastPrint) > 200*time.Millisecond {
			fmt.Fprintf(os.Stderr, "\r%s received", humanBytes(total))
			lastPrint = time.Now()
		}
	}
	if progress {
		fmt.Fprintf(os.Stderr, "\r%s received\n", humanBytes(total))
	}
	if last == nil || first == nil {
		return errors.New("backup stream ended before it was complete")
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Printf("backup of %s at index %d (term %d): %s, digest %x\n", first.NodeId, last.AppliedIndex, last.AppliedTerm, humanBytes(total), last.Digest)
	return nil
}

func runRestore(args []string) error {
	a := newAdminFlags("restore")
	from := a.fs.String("from", "", "backup file")
	data := a.fs.String("data", "", "data directory of the new node (must be empty)")
	id := a.fs.String("id", "", "ID the new node will serve with")
	raftAddr := a.fs.String("raft", "", "Raft address the new node will serve with")
	keep := a.fs.Bool("keep-uidvalidity", false, "keep every mailbox's UIDVALIDITY (only when no client can have seen mail newer than the backup)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *from == "" || *data == "" || *id == "" || *raftAddr == "" {
		return errors.New("usage: continuum restore --from FILE --data DIR --id ID --raft ADDR")
	}
	f, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer f.Close()
	index, t, err := node.Restore(f, *data, *id, *raftAddr, *keep)
	if err != nil {
		return err
	}
	fmt.Printf("restored state at index %d (term %d) into %s\n", index, t, *data)
	fmt.Printf("start it with: continuum serve --data %s --id %s --raft %s ... (no --bootstrap); other nodes join it\n", *data, *id, *raftAddr)
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
