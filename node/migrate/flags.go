package migrate

import (
	"bytes"
	"slices"
	"strings"
)

// The mbox convention for flags (mutt, Dovecot): Status (R read, O old),
// X-Status (A answered, F flagged, T draft, D deleted) and X-Keywords
// (Dovecot: keywords separated by spaces), written as the last fields of
// the header. Export adds them; import takes them off again and turns them
// into flags, so the stored bytes survive the trip.

// metaFields are the trailing header fields import treats as the mbox's
// own: the flag fields above and Dovecot's mbox bookkeeping.
var metaFields = []string{"status", "x-status", "x-keywords", "x-uid", "x-imapbase", "x-imap"}

// addMboxFlags inserts the flag fields at the end of the header.
func addMboxFlags(data []byte, flags []string) []byte {
	end, nl := headerEnd(data)
	if end < 0 {
		return data // no header/body boundary: nowhere to put them
	}
	var st, xst strings.Builder
	var kw []string
	if hasFlag(flags, `\Seen`) {
		st.WriteByte('R')
	}
	st.WriteByte('O')
	for _, f := range []struct {
		flag string
		c    byte
	}{{`\Answered`, 'A'}, {`\Flagged`, 'F'}, {`\Draft`, 'T'}, {`\Deleted`, 'D'}} {
		if hasFlag(flags, f.flag) {
			xst.WriteByte(f.c)
		}
	}
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) {
			kw = append(kw, f)
		}
	}
	var h bytes.Buffer
	h.WriteString("Status: " + st.String() + nl)
	if xst.Len() > 0 {
		h.WriteString("X-Status: " + xst.String() + nl)
	}
	if len(kw) > 0 {
		h.WriteString("X-Keywords: " + strings.Join(kw, " ") + nl)
	}
	out := make([]byte, 0, len(data)+h.Len())
	out = append(out, data[:end]...)
	out = append(out, h.Bytes()...)
	return append(out, data[end:]...)
}

// takeMboxFlags removes the trailing flag fields of the header and returns
// the message without them and the flags they held.
func takeMboxFlags(data []byte) ([]byte, []string) {
	end, nl := headerEnd(data)
	if end <= 0 {
		return data, nil
	}
	var flags []string
	cut := end
	for cut > 0 {
		// The last header line: from after the previous line end to cut.
		start := 0
		if i := bytes.LastIndex(data[:cut-len(nl)], []byte(nl)); i >= 0 {
			start = i + len(nl)
		}
		line := string(data[start : cut-len(nl)])
		name, value, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(metaFields, strings.ToLower(name)) || strings.ContainsAny(name, " \t") {
			break
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "status":
			if strings.Contains(value, "R") {
				flags = append(flags, `\Seen`)
			}
		case "x-status":
			for _, f := range []struct {
				c    string
				flag string
			}{{"A", `\Answered`}, {"F", `\Flagged`}, {"T", `\Draft`}, {"D", `\Deleted`}} {
				if strings.Contains(value, f.c) {
					flags = append(flags, f.flag)
				}
			}
		case "x-keywords":
			for _, k := range strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				flags = append(flags, k)
			}
		}
		cut = start
		if start == 0 {
			break
		}
	}
	if cut == end {
		return data, nil
	}
	out := make([]byte, 0, len(data)-(end-cut))
	out = append(out, data[:cut]...)
	return append(out, data[end:]...), uniqueFlags(flags)
}

func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(s string) bool { return strings.EqualFold(s, f) })
}

func uniqueFlags(in []string) []string {
	var out []string
	for _, f := range in {
		if !hasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out
}
