package storage

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchMessage is a realistic message as package bench makes them: a
// fifth prose of random words, the rest a random base64 attachment.
func benchMessage(size int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("the of and to a in is it you that he was for on are with as his they be at one have this from or had by hot word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write")
	var buf bytes.Buffer
	buf.WriteString("From: a@example.org\r\nTo: b@example.test\r\nSubject: bench\r\nMessage-ID: <1@bench>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n")
	for buf.Len() < size/5 {
		buf.WriteString(words[rng.IntN(len(words))])
		buf.WriteString(" ")
		if rng.IntN(12) == 0 {
			buf.WriteString("\r\n")
		}
	}
	buf.WriteString("\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	for buf.Len() < size-90 {
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		buf.WriteString(base64.StdEncoding.EncodeToString(raw) + "\r\n")
	}
	buf.WriteString("--b--\r\n")
	return buf.Bytes()
}

// BenchmarkBlobCodec: what one message costs the proposer (Compress) and
// each replica and read (DecompressSized), for a realistic 10 KiB message
// and a repetitive text one.
func BenchmarkBlobCodec(b *testing.B) {
	for _, body := range []struct {
		name string
		data []byte
	}{{"realistic", benchMessage(10 << 10)}, {"text", bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\r\n"), 222)}} {
		frame := Compress(body.data)
		b.Run(body.name+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(body.data)))
			for i := 0; i < b.N; i++ {
				Compress(body.data)
			}
			b.ReportMetric(float64(len(frame))/float64(len(body.data)), "stored/raw")
		})
		b.Run(body.name+"/decompress", func(b *testing.B) {
			b.SetBytes(int64(len(body.data)))
			for i := 0; i < b.N; i++ {
				if _, err := DecompressSized(frame, uint64(len(body.data))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
