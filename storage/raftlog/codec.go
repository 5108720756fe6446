package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// Key prefixes. They are single bytes so that the log and the stable keys
// occupy disjoint, contiguous key ranges: every log key sorts inside
// [logPrefix, logPrefix+1), which is what lets DeleteRange and the index
// recomputation at Open use plain key bounds.
const (
	logPrefix    byte = 'l'
	stablePrefix byte = 's'
)

const logKeyLen = 1 + 8

// logKeyUpper is the exclusive upper bound of the log key range.
var logKeyUpper = []byte{logPrefix + 1}

// logKeyLower is the inclusive lower bound of the log key range.
var logKeyLower = []byte{logPrefix}

// appendLogKey appends the key of the log entry at index to dst. The index is
// big-endian so that byte order equals numeric order.
func appendLogKey(dst []byte, index uint64) []byte {
	dst = append(dst, logPrefix)
	return binary.BigEndian.AppendUint64(dst, index)
}

// parseLogKey returns the index encoded in a log key.
func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != logPrefix {
		return 0, fmt.Errorf("%w: malformed log key %x", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

func stableKey(k []byte) []byte {
	out := make([]byte, 0, 1+len(k))
	out = append(out, stablePrefix)
	return append(out, k...)
}

// Log value format, version 1:
//
//	version    1 byte (= 1)
//	index      uvarint
//	term       uvarint
//	type       1 byte (raft.LogType)
//	appendedAt varint, unix nanoseconds; 0 means the zero time.Time
//	len(data)  uvarint, then data
//	len(ext)   uvarint, then extensions
//	crc        4 bytes big-endian CRC-32C (Castagnoli) of everything above
//
// The index is repeated in the value (it is also the key) so that a value
// that ended up under the wrong key is detected, not silently served.
const logFormatV1 byte = 1

const crcLen = 4

// Castagnoli because it is hardware-accelerated on amd64 and arm64 and is
// what pebble itself uses for its blocks and WAL.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendLog appends the encoding of l to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	start := len(dst)
	dst = append(dst, logFormatV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	var nanos int64
	if !l.AppendedAt.IsZero() {
		nanos = l.AppendedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, nanos)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
}

// encodedLogSize is an upper bound of len(appendLog(nil, l)), used to size
// the scratch buffer once per batch.
func encodedLogSize(l *raft.Log) int {
	return 1 + 3*binary.MaxVarintLen64 + 1 + 2*binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions) + crcLen
}

// decodeLog decodes v, the value stored under the key of index want, into l.
// v may be owned by pebble: the byte slices put in l are copies. Any defect
// is reported as an error wrapping ErrCorrupt; decodeLog never panics, which
// FuzzDecodeLog checks.
func decodeLog(want uint64, v []byte, l *raft.Log) error {
	if len(v) < 1+crcLen {
		return fmt.Errorf("%w: log %d: value is %d bytes", ErrCorrupt, want, len(v))
	}
	body, sum := v[:len(v)-crcLen], binary.BigEndian.Uint32(v[len(v)-crcLen:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return fmt.Errorf("%w: log %d: checksum %08x, want %08x", ErrCorrupt, want, got, sum)
	}
	if body[0] != logFormatV1 {
		return fmt.Errorf("%w: log %d: unknown format version %d", ErrCorrupt, want, body[0])
	}
	d := decoder{b: body[1:]}
	index := d.uvarint()
	term := d.uvarint()
	typ := d.byte()
	nanos := d.varint()
	data := d.bytes()
	ext := d.bytes()
	if d.err != nil {
		return fmt.Errorf("%w: log %d: %v", ErrCorrupt, want, d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: log %d: %d trailing bytes", ErrCorrupt, want, len(d.b))
	}
	if index != want {
		return fmt.Errorf("%w: log %d: value holds index %d", ErrCorrupt, want, index)
	}

	// One allocation for both byte fields; the three-index slices stop an
	// append to Data from running into Extensions.
	var buf []byte
	if n := len(data) + len(ext); n > 0 {
		buf = make([]byte, 0, n)
		buf = append(append(buf, data...), ext...)
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ)}
	if len(data) > 0 {
		l.Data = buf[:len(data):len(data)]
	}
	if len(ext) > 0 {
		l.Extensions = buf[len(data):len(buf):len(buf)]
	}
	if nanos != 0 {
		l.AppendedAt = time.Unix(0, nanos)
	}
	return nil
}

// decoder reads fields from b, remembering the first error so that the
// caller checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad uvarint at %d bytes from end", len(d.b))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint at %d bytes from end", len(d.b))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("short value")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) || n > math.MaxInt {
		d.err = fmt.Errorf("length %d exceeds remaining %d bytes", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
