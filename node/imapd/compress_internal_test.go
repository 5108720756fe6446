package imapd

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
)

// zlibSegments compresses each segment with Python's zlib (one raw DEFLATE
// stream, the given flush after each segment) and returns the compressed
// segments.
func zlibSegments(t *testing.T, mode string, segs [][]byte) [][]byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not installed (CI installs it in .ci/run)")
		}
		t.Skip("python3 not installed")
	}
	var in bytes.Buffer
	for _, s := range segs {
		binary.Write(&in, binary.BigEndian, uint32(len(s)))
		in.Write(s)
	}
	cmd := exec.Command(py, "testdata/zlib_flush.py", mode)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zlib_flush.py %s: %v", mode, err)
	}
	var z [][]byte
	for len(out) > 0 {
		n := binary.BigEndian.Uint32(out)
		z = append(z, out[4:4+n])
		out = out[4+n:]
	}
	if len(z) != len(segs) {
		t.Fatalf("zlib_flush.py gave %d segments for %d", len(z), len(segs))
	}
	return z
}

// flushSegments are what a client sends: short commands, a command
// repeated (back-references across flushes), a compressible and an
// incompressible literal (stored blocks), one-byte and empty segments.
func flushSegments() [][]byte {
	rnd := make([]byte, 70<<10)
	rand.New(rand.NewSource(1)).Read(rnd)
	segs := [][]byte{
		[]byte("a1 NOOP\r\n"),
		[]byte("a2 NOOP\r\n"),
		[]byte("a3 SELECT INBOX\r\n"),
		[]byte("a4 APPEND INBOX {110000+}\r\n"),
		bytes.Repeat([]byte("compressible line of text\r\n"), 110000/27+1)[:110000],
		[]byte("\r\n"),
		[]byte("a5 APPEND INBOX {71680+}\r\n"),
		rnd,
		[]byte("\r\na6 UID FETCH 1:* (FLAGS)\r\n"),
		[]byte("D"), []byte("O"), []byte("N"), []byte("E\r\n"),
	}
	for i := 7; i < 40; i++ {
		segs = append(segs, fmt.Appendf(nil, "a%d UID FETCH 1:* (FLAGS)\r\n", i))
	}
	// mbsync pipelines: 100 commands compressed together and flushed once
	// (a block with dynamic Huffman codes), several times over.
	for k := 0; k < 8; k++ {
		var b []byte
		for i := 0; i < 100+k; i++ {
			b = fmt.Appendf(b, "p%d.%d UID FETCH %d (BODY.PEEK[])\r\n", k, i, 1000*k+i)
		}
		segs = append(segs, b)
	}
	return segs
}

// feed writes every compressed segment to the inflater one byte at a time
// and returns, per segment, what the inflater handed out once the
// segment's last byte was in (waiting up to wait for it, never sending
// more input first).
func feed(t *testing.T, newReader func(io.Reader) io.Reader, z [][]byte, want [][]byte, wait time.Duration) []string {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	r := newReader(server)
	out := make(chan []byte, 1024)
	go func() {
		defer close(out)
		for {
			buf := make([]byte, 32<<10)
			n, err := r.Read(buf)
			if n > 0 {
				out <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	var got []string
	for i, seg := range z {
		for j := range seg {
			// net.Pipe's Write returns once the reader has taken the
			// byte: after the loop the inflater holds the whole segment.
			if _, err := client.Write(seg[j : j+1]); err != nil {
				t.Fatalf("segment %d byte %d: %v", i, j, err)
			}
		}
		var b []byte
		deadline := time.After(wait)
	collect:
		for len(b) < len(want[i]) {
			select {
			case p, ok := <-out:
				if !ok {
					break collect
				}
				b = append(b, p...)
			case <-deadline:
				break collect
			}
		}
		got = append(got, string(b))
		if len(b) < len(want[i]) {
			break // held back: the rest would only pile up
		}
	}
	return got
}

// TestInflateFlushModes checks the cause of mbsync's hang and its fix:
// zlib's output (Python's zlib module, the library isync links) after
// Z_PARTIAL_FLUSH, Z_SYNC_FLUSH and Z_FULL_FLUSH, fed one byte at a time,
// must come out of the session's inflater segment by segment, each as soon
// as its last byte is in. compress/flate (the standard library) is checked
// too: it hands out nothing of a partial-flushed command, and so is
// klauspost/compress/flate with WithPartialBlock: it reads 10 bits past a
// dynamic block's end code, which a partial flush does not always send (the
// 100 pipelined commands). Those two checks are why inflate.go exists; if
// one starts failing, that library changed and inflate.go's comment is
// stale.
func TestInflateFlushModes(t *testing.T) {
	segs := flushSegments()
	session := func(r io.Reader) io.Reader { return newDeflateConn(r.(net.Conn)).r }
	for _, mode := range []string{"partial", "sync", "full"} {
		t.Run(mode, func(t *testing.T) {
			z := zlibSegments(t, mode, segs)
			got := feed(t, session, z, segs, 10*time.Second)
			if len(got) != len(segs) {
				t.Fatalf("segment %d (%q...) not handed out after its last byte (got %d of %d bytes)",
					len(got)-1, trunc(segs[len(got)-1]), len(got[len(got)-1]), len(segs[len(got)-1]))
			}
			for i := range segs {
				if got[i] != string(segs[i]) {
					t.Fatalf("segment %d: got %d bytes %q..., want %q...", i, len(got[i]), trunc([]byte(got[i])), trunc(segs[i]))
				}
			}
		})
	}
	t.Run("klauspost", func(t *testing.T) {
		kp := func(r io.Reader) io.Reader { return kflate.NewReaderOpts(r, kflate.WithPartialBlock()) }
		z := zlibSegments(t, "partial", segs)
		got := feed(t, kp, z, segs, 2*time.Second)
		last := len(got) - 1
		if len(got) == len(segs) && got[last] == string(segs[last]) {
			t.Errorf("klauspost/compress/flate handed out every partial-flushed segment; inflate.go's reasoning is stale")
		} else {
			t.Logf("klauspost/compress/flate (WithPartialBlock) held segment %d (%d bytes: %q...)", last, len(segs[last]), trunc(segs[last]))
		}
	})
	t.Run("stdlib", func(t *testing.T) {
		std := func(r io.Reader) io.Reader { return stdflate.NewReader(r) }
		z := zlibSegments(t, "partial", segs[:1])
		if got := feed(t, std, z, segs[:1], 500*time.Millisecond); got[0] != "" {
			t.Errorf("compress/flate handed out %q after Z_PARTIAL_FLUSH; compress.go's reasoning is stale", got[0])
		}
		z = zlibSegments(t, "sync", segs[:1])
		if got := feed(t, std, z, segs[:1], 10*time.Second); got[0] != string(segs[0]) {
			t.Errorf("compress/flate after Z_SYNC_FLUSH: %q", got[0])
		}
	})
}

func trunc(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return strings.ToValidUTF8(string(b), "?")
}
