package imapd

import (
	"bufio"
	"errors"
	"io"
)

// inflater decodes a raw DEFLATE stream (RFC 1951) for COMPRESS=DEFLATE,
// handing out what it decoded at the end of every block and never reading
// an input byte before a bit of it is needed.
//
// Written for the project because neither inflater at hand does both:
// compress/flate hands out output only at a stored block, a full window or
// the final block, and klauspost/compress/flate (WithPartialBlock) hands it
// out at block ends but, in a dynamic-Huffman block, reads 10 bits past the
// end-of-block code before decoding it (its maxRead optimisation assumes a
// next block is already there). After zlib's Z_PARTIAL_FLUSH only 3 to 10
// bits of the empty fixed-code block follow the end code; the rest stays in
// the client's compressor until it has more to say, so the command was
// never decoded (mbsync pipelining 100 FETCHes; TestInflateFlushModes).
//
// Decoding keeps to what the current code needs: a 9-bit lookup is used
// only when 9 bits are already in the bit buffer or buffered below it, and
// otherwise the code is read bit by bit (canonical decoding, RFC 1951
// §3.2.2), fetching a byte only when the bit buffer is empty.
type inflater struct {
	br  *bufio.Reader
	b   uint64 // bit buffer, next bit lowest
	nb  uint   // bits in b
	win []byte // the last ≥32 KiB of output and what is not yet handed out
	rd  int    // win[rd:] is not yet handed out
	err error

	final   bool // the current block is the last
	inBlock bool
	stored  int // bytes left in a stored block; -1 for a Huffman block
	lit     *huffman
	dist    *huffman
	dyn     [2]huffman // tables of the current dynamic block
}

const (
	inflateWindow  = 32 << 10
	inflatePending = 32 << 10 // hand out at least this often inside a block
	fastBits       = 9
)

var errInflate = errors.New("COMPRESS: invalid DEFLATE data")

func newInflater(r io.Reader) *inflater {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &inflater{br: br, stored: -1}
}

// Read hands out decoded bytes: what is pending, else it decodes until a
// block ends with output pending or inflatePending bytes have gathered.
func (f *inflater) Read(p []byte) (int, error) {
	for f.rd == len(f.win) {
		if f.err != nil {
			return 0, f.err
		}
		f.compact()
		f.err = f.decode()
	}
	n := copy(p, f.win[f.rd:])
	f.rd += n
	return n, nil
}

// compact drops history beyond the window once everything is handed out.
func (f *inflater) compact() {
	if len(f.win) > 2*inflateWindow {
		n := copy(f.win, f.win[len(f.win)-inflateWindow:])
		f.win = f.win[:n]
		f.rd = n
	}
}

func (f *inflater) decode() error {
	for {
		if !f.inBlock {
			if f.final {
				return io.EOF
			}
			if err := f.header(); err != nil {
				return err
			}
			continue
		}
		var err error
		if f.stored >= 0 {
			err = f.storedData()
		} else {
			err = f.huffmanData()
		}
		if err != nil {
			return err
		}
		if len(f.win)-f.rd >= inflatePending || (!f.inBlock && len(f.win) > f.rd) {
			return nil
		}
	}
}

// bits returns the next n (≤ 32) bits, reading bytes only as they are
// needed.
func (f *inflater) bits(n uint) (uint32, error) {
	for f.nb < n {
		c, err := f.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		f.b |= uint64(c) << f.nb
		f.nb += 8
	}
	v := uint32(f.b & (1<<n - 1))
	f.b >>= n
	f.nb -= n
	return v, nil
}

// fillBuffered moves bytes already buffered below into the bit buffer;
// it never waits for input.
func (f *inflater) fillBuffered() {
	for f.nb <= 56 && f.br.Buffered() > 0 {
		c, _ := f.br.ReadByte()
		f.b |= uint64(c) << f.nb
		f.nb += 8
	}
}

func (f *inflater) header() error {
	h, err := f.bits(3)
	if err != nil {
		return err
	}
	f.final = h&1 == 1
	switch h >> 1 {
	case 0:
		f.b >>= f.nb % 8 // to the byte boundary
		f.nb -= f.nb % 8
		v, err := f.bits(32)
		if err != nil {
			return err
		}
		if uint16(v) != ^uint16(v>>16) {
			return errInflate
		}
		f.stored = int(uint16(v))
	case 1:
		f.stored, f.lit, f.dist = -1, &fixedLit, &fixedDist
	case 2:
		if err := f.dynamic(); err != nil {
			return err
		}
		f.stored, f.lit, f.dist = -1, &f.dyn[0], &f.dyn[1]
	default:
		return errInflate
	}
	f.inBlock = true
	return nil
}

var codeLengthOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads the code tables of a dynamic-Huffman block (§3.2.7).
func (f *inflater) dynamic() error {
	v, err := f.bits(14)
	if err != nil {
		return err
	}
	nlit, ndist, nclen := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlit > 286 || ndist > 30 {
		return errInflate
	}
	var lens [286 + 30]uint8
	for i := 0; i < nclen; i++ {
		l, err := f.bits(3)
		if err != nil {
			return err
		}
		lens[codeLengthOrder[i]] = uint8(l)
	}
	var clen huffman
	if !clen.init(lens[:19]) {
		return errInflate
	}
	clear(lens[:19])
	for i := 0; i < nlit+ndist; {
		sym, err := f.symbol(&clen)
		if err != nil {
			return err
		}
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep uint32
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return errInflate
			}
			val = lens[i-1]
			rep, err = f.bits(2)
			rep += 3
		case 17:
			rep, err = f.bits(3)
			rep += 3
		default:
			rep, err = f.bits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+int(rep) > nlit+ndist {
			return errInflate
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	if lens[256] == 0 { // no end-of-block code
		return errInflate
	}
	if !f.dyn[0].init(lens[:nlit]) || !f.dyn[1].init(lens[nlit:nlit+ndist]) {
		return errInflate
	}
	return nil
}

func (f *inflater) storedData() error {
	for f.stored > 0 && f.nb >= 8 {
		f.win = append(f.win, byte(f.b))
		f.b >>= 8
		f.nb -= 8
		f.stored--
	}
	if f.stored > 0 {
		// What is buffered (or one read of the connection): a stored
		// block is handed out as it arrives.
		n := min(f.stored, inflatePending)
		if b := f.br.Buffered(); b > 0 {
			n = min(n, b)
		}
		l := len(f.win)
		f.win = append(f.win, make([]byte, n)...)
		got, err := f.br.Read(f.win[l:])
		f.win = f.win[:l+got]
		f.stored -= got
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if f.stored == 0 {
		f.inBlock, f.stored = false, -1
	}
	return nil
}

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// huffmanData decodes symbols until the block ends or enough output is
// pending.
func (f *inflater) huffmanData() error {
	for len(f.win)-f.rd < inflatePending {
		sym, err := f.symbol(f.lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			f.win = append(f.win, byte(sym))
			continue
		case sym == 256:
			f.inBlock = false
			return nil
		case sym > 285:
			return errInflate
		}
		sym -= 257
		extra, err := f.bits(uint(lengthExtra[sym]))
		if err != nil {
			return err
		}
		length := int(lengthBase[sym]) + int(extra)
		ds, err := f.symbol(f.dist)
		if err != nil {
			return err
		}
		if ds >= 30 {
			return errInflate
		}
		extra, err = f.bits(uint(distExtra[ds]))
		if err != nil {
			return err
		}
		d := int(distBase[ds]) + int(extra)
		if d > len(f.win) {
			return errInflate
		}
		start := len(f.win) - d
		if d >= length {
			f.win = append(f.win, f.win[start:start+length]...)
		} else {
			for i := 0; i < length; i++ {
				f.win = append(f.win, f.win[start+i])
			}
		}
	}
	return nil
}

// symbol decodes one symbol of h.
func (f *inflater) symbol(h *huffman) (int, error) {
	if f.nb < fastBits {
		f.fillBuffered()
	}
	if f.nb >= fastBits {
		if e := h.fast[f.b&(1<<fastBits-1)]; e != 0 {
			l := uint(e & 15)
			f.b >>= l
			f.nb -= l
			return int(e >> 4), nil
		}
	}
	// Canonical decoding a bit at a time (codes are sent from their
	// most significant bit).
	code, first, index := 0, 0, 0
	for l := 1; l <= 15; l++ {
		bit, err := f.bits(1)
		if err != nil {
			return 0, err
		}
		code |= int(bit)
		count := int(h.count[l])
		if code-first < count {
			return int(h.symbol[index+code-first]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errInflate
}

// huffman is a canonical Huffman code (RFC 1951 §3.2.2).
type huffman struct {
	count  [16]uint16            // codes of each length
	symbol [288]uint16           // symbols in code order
	fast   [1 << fastBits]uint16 // (symbol<<4 | length) by the next fastBits bits; 0: longer code
}

// init builds the code from the code lengths; false if the lengths
// over-subscribe. An incomplete code is accepted (RFC 1951 allows one
// distance code); a bit pattern outside it is an error when met.
func (h *huffman) init(lens []uint8) bool {
	*h = huffman{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l <= 15; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return false
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + int(h.count[l])
	}
	for s, l := range lens {
		if l != 0 {
			h.symbol[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	// The fast table: each code of up to fastBits bits, bit-reversed (the
	// stream sends a code's top bit first), in every slot its unused high
	// bits can take.
	code := 0
	index := 0
	for l := 1; l <= 15; l++ {
		for i := 0; i < int(h.count[l]); i++ {
			if l <= fastBits {
				rev := 0
				for b := 0; b < l; b++ {
					rev |= (code >> b & 1) << (l - 1 - b)
				}
				e := h.symbol[index]<<4 | uint16(l)
				for x := rev; x < 1<<fastBits; x += 1 << l {
					h.fast[x] = e
				}
			}
			code++
			index++
		}
		code <<= 1
	}
	return true
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.init(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.init(d[:])
}
