package imapd

import (
	"bytes"
	stdflate "compress/flate"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

// inflateCorpus is data of several kinds: text, repeats at every distance,
// random bytes (stored blocks), long runs (overlapping copies).
func inflateCorpus(rnd *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		switch rnd.Intn(4) {
		case 0:
			b.WriteString("a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject)])\r\n")
		case 1:
			r := make([]byte, rnd.Intn(3000))
			rnd.Read(r)
			b.Write(r)
		case 2:
			b.Write(bytes.Repeat([]byte{byte(rnd.Intn(256))}, rnd.Intn(1000)))
		default:
			if b.Len() > 0 {
				start := rnd.Intn(b.Len())
				end := start + rnd.Intn(min(b.Len()-start, 300)+1)
				b.Write(bytes.Clone(b.Bytes()[start:end]))
			}
		}
	}
	return b.Bytes()
}

// TestInflateAgainstStdlib: streams written by compress/flate at every
// kind of level (stored, Huffman-only, fast, default, best), flushed at
// random points and closed, decode to the input through inflater, read in
// one-byte, half and whole reads.
func TestInflateAgainstStdlib(t *testing.T) {
	rnd := rand.New(rand.NewSource(3))
	for _, level := range []int{stdflate.NoCompression, stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression} {
		for trial := 0; trial < 4; trial++ {
			data := inflateCorpus(rnd, 1+rnd.Intn(300<<10))
			var z bytes.Buffer
			w, _ := stdflate.NewWriter(&z, level)
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 1+rnd.Intn(40<<10))
				w.Write(rest[:n])
				rest = rest[n:]
				if rnd.Intn(2) == 0 {
					w.Flush()
				}
			}
			w.Close()
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"whole": func(r io.Reader) io.Reader { return r }, "half": iotest.HalfReader, "byte": iotest.OneByteReader,
			} {
				got, err := io.ReadAll(newInflater(wrap(bytes.NewReader(z.Bytes()))))
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("level %d trial %d %s reads: err %v, %d bytes back of %d, equal %v", level, trial, name, err, len(got), len(data), bytes.Equal(got, data))
				}
			}
		}
	}
}

// TestInflateCorrupt: damaged streams end in an error, never a panic or
// output compress/flate would not give.
func TestInflateCorrupt(t *testing.T) {
	rnd := rand.New(rand.NewSource(4))
	data := inflateCorpus(rnd, 50<<10)
	var z bytes.Buffer
	w, _ := stdflate.NewWriter(&z, stdflate.DefaultCompression)
	w.Write(data)
	w.Close()
	errs := 0
	for i := 0; i < 300; i++ {
		bad := bytes.Clone(z.Bytes())
		bad[rnd.Intn(len(bad))] ^= byte(1 + rnd.Intn(255))
		got, err := io.ReadAll(newInflater(bytes.NewReader(bad)))
		want, werr := io.ReadAll(stdflate.NewReader(bytes.NewReader(bad)))
		if err != nil {
			errs++
		}
		if (err == nil) != (werr == nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("flip %d: inflater err %v (%d bytes), compress/flate err %v (%d bytes)", i, err, len(got), werr, len(want))
		}
	}
	if errs == 0 {
		t.Fatal("no damaged stream was refused")
	}
	if _, err := io.ReadAll(newInflater(bytes.NewReader([]byte{0x07}))); err == nil { // reserved block type 3
		t.Error("block type 3 accepted")
	}
}

// FuzzInflate compares inflater with compress/flate on any input: the
// same output when compress/flate succeeds, an error when it fails.
func FuzzInflate(f *testing.F) {
	var z bytes.Buffer
	w, _ := stdflate.NewWriter(&z, stdflate.BestSpeed)
	w.Write([]byte("a1 NOOP\r\na2 NOOP\r\na3 NOOP\r\n"))
	w.Flush()
	w.Close()
	f.Add(z.Bytes())
	f.Add([]byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(newInflater(bytes.NewReader(in)))
		want, werr := io.ReadAll(stdflate.NewReader(bytes.NewReader(in)))
		if (err == nil) != (werr == nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("inflater err %v (%d bytes), compress/flate err %v (%d bytes)", err, len(got), werr, len(want))
		}
	})
}

// BenchmarkInflate decodes 4 MiB of mixed data (inflateCorpus, level 6)
// with inflater and with compress/flate, for comparison in one run.
func BenchmarkInflate(b *testing.B) {
	data := inflateCorpus(rand.New(rand.NewSource(5)), 4<<20)
	var z bytes.Buffer
	w, _ := stdflate.NewWriter(&z, stdflate.DefaultCompression)
	w.Write(data)
	w.Close()
	for name, open := range map[string]func(io.Reader) io.Reader{
		"inflater":      func(r io.Reader) io.Reader { return newInflater(r) },
		"compressflate": func(r io.Reader) io.Reader { return stdflate.NewReader(r) },
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				n, err := io.Copy(io.Discard, open(bytes.NewReader(z.Bytes())))
				if err != nil || n != int64(len(data)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}
