package search

import (
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// ExtractReader is Extract for a message read as a stream of size bytes
// (a large message's chunks, storage.OpenBlob): it keeps only the byte
// ranges Extract reads (the top-level header, the headers of attached
// messages, the first MaxRawText bytes of each text part) and runs Extract
// on those, with the part offsets moved to match. Same Doc as Extract on
// the whole message; memory: those ranges, not the message. Without a
// parsed record the whole message is read.
func ExtractReader(r io.Reader, size int64, parsed *storagepb.ParsedMessage) (*Doc, error) {
	root := parsed.GetRoot()
	if root == nil || size < 0 || !insideSize(root, uint64(size)) {
		data, err := io.ReadAll(io.LimitReader(r, size))
		if err != nil {
			return nil, err
		}
		return Extract(data, parsed), nil
	}
	// The ranges Extract reads, by walking the tree as bodyText does.
	type span struct{ start, end uint64 }
	var spans []span
	spans = append(spans, span{root.HeaderStart, root.HeaderEnd})
	var walk func(p *storagepb.Part, depth int)
	walk = func(p *storagepb.Part, depth int) {
		if depth > 64 || !insideSize(p, uint64(size)) {
			return
		}
		switch {
		case p.Type == "multipart":
			for _, c := range p.Children {
				walk(c, depth+1)
			}
			return
		case p.Type == "message" && len(p.Children) == 1:
			c := p.Children[0]
			if insideSize(c, uint64(size)) {
				spans = append(spans, span{c.HeaderStart, c.HeaderEnd})
			}
			walk(c, depth+1)
			return
		}
		if p.Type != "text" || p.Disposition == "attachment" {
			return
		}
		spans = append(spans, span{p.BodyStart, min(p.BodyEnd, p.BodyStart+MaxRawText)})
	}
	walk(root, 0)
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	var merged []span
	for _, s := range spans {
		if s.end <= s.start {
			continue
		}
		if n := len(merged); n > 0 && s.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	// Read the stream once, keeping the merged ranges back to back.
	var buf []byte
	starts := make([]uint64, len(merged)) // each range's offset in buf
	pos := uint64(0)
	for i, s := range merged {
		if _, err := io.CopyN(io.Discard, r, int64(s.start-pos)); err != nil {
			return nil, fmt.Errorf("search: reading the message: %w", err)
		}
		starts[i] = uint64(len(buf))
		n := s.end - s.start
		buf = slices.Grow(buf, int(n))
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+int(n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, fmt.Errorf("search: reading the message: %w", err)
		}
		pos = s.end
	}
	// move maps a range of the message into buf; a range Extract does not
	// read becomes empty.
	move := func(start, end uint64) (uint64, uint64) {
		for i, s := range merged {
			if start >= s.start && start <= s.end && end >= start {
				e := min(end, s.end)
				return starts[i] + start - s.start, starts[i] + e - s.start
			}
		}
		return 0, 0
	}
	moved := proto.Clone(parsed).(*storagepb.ParsedMessage)
	var remap func(p *storagepb.Part)
	remap = func(p *storagepb.Part) {
		if p == nil {
			return
		}
		if !insideSize(p, uint64(size)) { // Extract skips it: keep it skipped
			p.HeaderStart, p.HeaderEnd = 1, 0
			return
		}
		p.HeaderStart, p.HeaderEnd = move(p.HeaderStart, p.HeaderEnd)
		bs, be := p.BodyStart, p.BodyEnd
		p.BodyStart, p.BodyEnd = move(bs, min(be, bs+MaxRawText))
		for _, c := range p.Children {
			remap(c)
		}
	}
	remap(moved.Root)
	return Extract(buf, moved), nil
}

func insideSize(p *storagepb.Part, n uint64) bool {
	return p.HeaderStart <= p.HeaderEnd && p.HeaderEnd <= n && p.BodyStart <= p.BodyEnd && p.BodyEnd <= n
}
