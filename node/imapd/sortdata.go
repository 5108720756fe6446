package imapd

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// What SORT (RFC 5256 §3) and THREAD (§4) order by, read for the messages
// a search matched: the record (arrival, size), the envelope parsed at
// delivery (sent date, subject, addresses, Message-ID, In-Reply-To) and,
// for THREAD=REFERENCES only, the References field from the stored
// header block (node/mail/headers.go; the body is not read).

// sortMsg is one message with its sort and thread keys.
type sortMsg struct {
	seq     uint32
	uid     uint32
	arrival int64  // INTERNALDATE, Unix seconds
	sent    int64  // Date header, Unix seconds; INTERNALDATE when absent or unparseable
	size    uint64 // RFC822.SIZE
	subject string // base subject (RFC 5256 §2.1), ASCII upper-cased
	reply   bool   // the subject was a reply or forward (RFC 5256 §2.1)
	from    string // first address's mailbox, ASCII upper-cased
	to, cc  string
	// displayFrom and displayTo are RFC 5957's sort values of the first
	// From and To address, ASCII upper-cased.
	displayFrom, displayTo string
	msgID                  string   // Message-ID without <>, "" when none
	refs                   []string // References (or first In-Reply-To id), oldest first
}

// sortData reads the sort keys of the messages with the given UIDs (those
// of the view; others are skipped), in view order. refs asks for the
// References field too.
func (s *session) sortData(uids imap.UIDSet, refs bool) ([]sortMsg, error) {
	sel := s.sel
	var idx []int
	for _, u := range numsOf(uids) {
		if i, ok := sel.index(u); ok {
			idx = append(idx, i)
		}
	}
	v := s.mail.View()
	defer v.Close()
	var out []sortMsg
	var shas [][]byte
	err := s.scan(v, idx, func(f fetched) error {
		p, err := v.Parsed(f.msg.Blob)
		if err != nil {
			return err
		}
		out = append(out, newSortMsg(f.seq, f.msg, p.GetEnvelope()))
		shas = append(shas, f.msg.Blob)
		return nil
	})
	if err != nil || !refs {
		return out, err
	}
	err = v.HeaderBlocks(shas, func(i int, block []byte) error {
		h, herr := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(block)))
		if herr != nil {
			return nil // a header the parser refuses: no References
		}
		if ids := msgIDs(h.Get("References")); len(ids) > 0 {
			out[i].refs = ids
		}
		return nil
	})
	return out, err
}

func newSortMsg(seq uint32, m *storagepb.Message, e *storagepb.Envelope) sortMsg {
	sm := sortMsg{seq: seq, uid: m.Uid, arrival: m.InternalDateUnix, sent: e.GetDateUnix(), size: m.Size}
	if sm.sent == 0 {
		sm.sent = sm.arrival
	}
	sm.subject, sm.reply = baseSubject(e.GetSubject())
	sm.subject = asciiUpper(sm.subject)
	sm.from = firstMailbox(e.GetFrom())
	sm.to = firstMailbox(e.GetTo())
	sm.cc = firstMailbox(e.GetCc())
	sm.displayFrom = displayValue(e.GetFrom())
	sm.displayTo = displayValue(e.GetTo())
	if ids := msgIDs(e.GetMessageId()); len(ids) > 0 {
		sm.msgID = ids[0]
	}
	if ids := msgIDs(e.GetInReplyTo()); len(ids) > 0 {
		sm.refs = ids[:1] // RFC 5256 §4 (1)(A): the first one, when no References
	}
	return sm
}

// firstMailbox is the addr-mailbox of the first address (RFC 5256 §3),
// compared with i;ascii-casemap.
func firstMailbox(as []*storagepb.Address) string {
	for _, a := range as {
		if a.Group || a.Host == "" && a.Mailbox == "" {
			continue
		}
		return asciiUpper(a.Mailbox)
	}
	return ""
}

// displayValue is the DISPLAY sort value of the first address (RFC 5957
// §3): its display name (RFC 2047 words decoded at delivery) when not
// empty, else mailbox@host, else the mailbox, else "" — compared with
// i;ascii-casemap.
func displayValue(as []*storagepb.Address) string {
	for _, a := range as {
		if a.Group || a.Host == "" && a.Mailbox == "" {
			continue
		}
		switch {
		case a.Name != "":
			return asciiUpper(a.Name)
		case a.Host != "":
			return asciiUpper(a.Mailbox + "@" + a.Host)
		default:
			return asciiUpper(a.Mailbox)
		}
	}
	return ""
}

// asciiUpper is the i;ascii-casemap collation's key (RFC 4790 §9.2): only
// a–z are mapped.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// msgIDs returns the msg-ids ("<...>") in a field, without the brackets
// and any space inside them.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return out
		}
		id := strings.Join(strings.Fields(v[i+1:i+j]), "")
		if id != "" && strings.Contains(id, "@") {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
}

// baseSubject extracts the base subject of RFC 5256 §2.1 from a decoded
// subject, and whether the subject marked a reply or forward.
func baseSubject(s string) (string, bool) {
	s = strings.Join(strings.Fields(s), " ") // (1): WSP runs to one space
	reply := false
	for {
		// (2) trailing "(fwd)" and spaces.
		for {
			t := strings.TrimRight(s, " ")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t, reply = t[:len(t)-5], true
			} else if t == s {
				break
			}
			s = t
		}
		// (3)–(5): leading "re:", "fw:", "fwd:" (with blobs) and blobs.
		for {
			t := strings.TrimLeft(s, " ")
			if rest, ok := cutRefwd(t); ok {
				t, reply = rest, true
			}
			if rest, ok := cutBlob(t); ok && strings.TrimSpace(rest) != "" {
				t = rest
			}
			if t == s {
				break
			}
			s = t
		}
		// (6) "[fwd: ...]".
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s, reply = s[5:len(s)-1], true
			continue
		}
		return s, reply
	}
}

// cutBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	j := strings.IndexAny(s[1:], "[]")
	if j < 0 || s[1+j] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[j+2:], " "), true
}

// cutRefwd removes a leading subj-refwd with the blobs before it:
// *subj-blob ("re" / "fw" ["d"]) *WSP [subj-blob] ":".
func cutRefwd(s string) (string, bool) {
	t := s
	for {
		rest, ok := cutBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	switch {
	case len(t) >= 2 && strings.EqualFold(t[:2], "re"):
		t = t[2:]
	case len(t) >= 2 && strings.EqualFold(t[:2], "fw"):
		t = t[2:]
		if len(t) > 0 && (t[0] == 'd' || t[0] == 'D') {
			t = t[1:]
		}
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if rest, ok := cutBlob(t); ok {
		t = rest
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}
