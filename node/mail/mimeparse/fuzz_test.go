package mimeparse

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// fuzzLimits are small so that the fuzzer reaches the truncation paths.
var fuzzLimits = Limits{MaxDepth: 4, MaxParts: 8, MaxHeaderBytes: 4096, MaxHeaderLines: 64}

func FuzzParse(f *testing.F) {
	for _, msg := range []string{
		msgPlain, msgAlternative, msgMixed, msgForward, msgEncoded, msgMissing,
		msgNoBlank, msgBareLF, msgUnterminated, msgDigest, msgLenient,
	} {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range []Limits{DefaultLimits(), fuzzLimits} {
			m, err := Parse(data, lim)
			if err != nil {
				if !errors.Is(err, ErrTooComplex) {
					t.Fatalf("Parse: unexpected error %v", err)
				}
				continue
			}
			checkInvariants(t, data, m, lim)
			again, err := Parse(data, lim)
			if err != nil || !proto.Equal(m, again) {
				t.Fatalf("Parse is not deterministic: %v", err)
			}
		}
	})
}

// checkInvariants is the oracle of FuzzParse, also run on every table test:
// offsets lie in data and nest, limits hold, and the record survives the
// proto3 round trip that storing it takes.
func checkInvariants(t *testing.T, data []byte, m *storagepb.ParsedMessage, lim Limits) {
	t.Helper()
	lim = lim.withDefaults()
	if m.GetRoot() == nil || m.GetEnvelope() == nil {
		t.Fatalf("record without root or envelope: %v", m)
	}
	if r := m.Root; r.HeaderStart != 0 || r.BodyEnd != uint64(len(data)) {
		t.Errorf("root spans [%d,%d), want [0,%d)", r.HeaderStart, r.BodyEnd, len(data))
	}
	parts := 0
	var check func(p *storagepb.Part, depth int)
	check = func(p *storagepb.Part, depth int) {
		parts++
		if depth > lim.MaxDepth {
			t.Errorf("part at depth %d, limit %d", depth, lim.MaxDepth)
		}
		if !(p.HeaderStart <= p.HeaderEnd && p.HeaderEnd == p.BodyStart && p.BodyStart <= p.BodyEnd && p.BodyEnd <= uint64(len(data))) {
			t.Fatalf("offsets [%d,%d,%d,%d] out of order or past %d", p.HeaderStart, p.HeaderEnd, p.BodyStart, p.BodyEnd, len(data))
		}
		if p.Size != p.BodyEnd-p.BodyStart {
			t.Errorf("size %d, body [%d,%d)", p.Size, p.BodyStart, p.BodyEnd)
		}
		if p.Type == "" || p.Subtype == "" || p.Encoding == "" {
			t.Errorf("empty type %q/%q or encoding %q", p.Type, p.Subtype, p.Encoding)
		}
		if isMessage(p) && len(p.Children) == 1 {
			c := p.Children[0]
			if c.HeaderStart != p.BodyStart || c.BodyEnd != p.BodyEnd || p.Envelope == nil {
				t.Errorf("message child [%d,%d) of body [%d,%d), envelope %v", c.HeaderStart, c.BodyEnd, p.BodyStart, p.BodyEnd, p.Envelope)
			}
		} else if len(p.Children) > 0 && p.Type != "multipart" {
			t.Errorf("%s/%s part has %d children", p.Type, p.Subtype, len(p.Children))
		}
		prev := p.BodyStart
		for _, c := range p.Children {
			if c.HeaderStart < prev || c.BodyEnd > p.BodyEnd {
				t.Fatalf("child [%d,%d) outside parent body [%d,%d) or before its sibling's end %d",
					c.HeaderStart, c.BodyEnd, p.BodyStart, p.BodyEnd, prev)
			}
			prev = c.BodyEnd
			check(c, depth+1)
		}
	}
	check(m.Root, 1)
	if parts > lim.MaxParts {
		t.Errorf("%d parts, limit %d", parts, lim.MaxParts)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back storagepb.ParsedMessage
	if err := proto.Unmarshal(b, &back); err != nil || !proto.Equal(&back, m) {
		t.Fatalf("proto round trip: %v", err)
	}
}
