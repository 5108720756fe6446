package imapd

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §4), over the
// messages a search matches.

// thread is a node of a thread tree; msg is nil for a dummy (a message
// referred to but not among those threaded).
type thread struct {
	msg      *sortMsg
	parent   *thread
	children []*thread
}

func (c *conn) cmdThread(cmd *wire.Command) error { return c.threadCmd(cmd, false) }

// threadCmd implements THREAD and UID THREAD.
func (c *conn) threadCmd(cmd *wire.Command, uid bool) error {
	if len(cmd.Args) < 3 {
		return errBad("THREAD takes an algorithm, a charset and search criteria")
	}
	alg := strings.ToUpper(cmd.Args[0].Str)
	if cmd.Args[0].Kind != wire.Atom || (alg != "ORDEREDSUBJECT" && alg != "REFERENCES") {
		return errBad("Unknown THREAD algorithm " + cmd.Args[0].Str)
	}
	crit, err := searchArgs(cmd.Args[1:])
	if err != nil {
		return err
	}
	msgs, err := c.matching(crit, alg == "REFERENCES")
	if err != nil {
		return err
	}
	var roots []*thread
	if alg == "ORDEREDSUBJECT" {
		roots = orderedSubject(msgs)
	} else {
		roots = references(msgs)
	}
	var sb strings.Builder
	sb.WriteString("* THREAD ")
	for _, r := range roots {
		sb.WriteByte('(')
		writeThread(&sb, r, uid)
		sb.WriteByte(')')
	}
	c.w.Raw(strings.TrimSuffix(sb.String(), " ")).CRLF()
	return nil
}

// writeThread writes a node's thread-members: its number, then its only
// child's members, or each child as a nested list (RFC 5256 §5, thread-list).
// A dummy writes only its children, nested.
func writeThread(sb *strings.Builder, t *thread, uid bool) {
	if t.msg != nil {
		n := t.msg.seq
		if uid {
			n = t.msg.uid
		}
		sb.WriteString(strconv.FormatUint(uint64(n), 10))
		switch len(t.children) {
		case 0:
			return
		case 1:
			sb.WriteByte(' ')
			writeThread(sb, t.children[0], uid)
			return
		}
		sb.WriteByte(' ')
	}
	for _, ch := range t.children {
		sb.WriteByte('(')
		writeThread(sb, ch, uid)
		sb.WriteByte(')')
	}
}

// bySent orders messages by sent date, then sequence number (RFC 5256 §4).
func bySent(a, b *sortMsg) int {
	if c := cmp.Compare(a.sent, b.sent); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// orderedSubject: messages grouped by base subject, each group sorted by
// sent date; the first is the parent of the others (siblings); groups in
// the order of their first message's sent date (RFC 5256 §4,
// ORDEREDSUBJECT).
func orderedSubject(msgs []sortMsg) []*thread {
	sorted := make([]*sortMsg, len(msgs))
	for i := range msgs {
		sorted[i] = &msgs[i]
	}
	slices.SortStableFunc(sorted, bySent)
	groups := map[string]*thread{}
	var roots []*thread
	for _, m := range sorted {
		if g, ok := groups[m.subject]; ok {
			g.children = append(g.children, &thread{msg: m, parent: g})
			continue
		}
		t := &thread{msg: m}
		groups[m.subject] = t
		roots = append(roots, t)
	}
	return roots
}

// firstMsg is the message a node sorts by: its own, or a dummy's first
// child's (RFC 5256 §4 REFERENCES (4), (6)).
func (t *thread) firstMsg() *sortMsg {
	for t.msg == nil {
		if len(t.children) == 0 {
			return &sortMsg{}
		}
		t = t.children[0]
	}
	return t.msg
}

func (t *thread) isAncestorOf(o *thread) bool {
	for p := o; p != nil; p = p.parent {
		if p == t {
			return true
		}
	}
	return false
}

func (t *thread) removeChild(ch *thread) {
	t.children = slices.DeleteFunc(t.children, func(x *thread) bool { return x == ch })
	ch.parent = nil
}

func (t *thread) addChild(ch *thread) {
	if ch.parent != nil {
		ch.parent.removeChild(ch)
	}
	ch.parent = t
	t.children = append(t.children, ch)
}

// references is RFC 5256 §4's REFERENCES algorithm.
func references(msgs []sortMsg) []*thread {
	// (1) Containers by Message-ID; a message without one, or with one
	// already taken, gets a container of its own.
	byID := map[string]*thread{}
	container := func(id string) *thread {
		t, ok := byID[id]
		if !ok {
			t = &thread{}
			byID[id] = t
		}
		return t
	}
	var all []*thread
	for i := range msgs {
		m := &msgs[i]
		var t *thread
		if m.msgID != "" {
			if c := container(m.msgID); c.msg == nil {
				t = c
			}
		}
		if t == nil {
			t = &thread{}
		}
		t.msg = m
		all = append(all, t)
		// (1)(B) link the references in order, not changing existing
		// links, never making a loop.
		var prev *thread
		for _, id := range m.refs {
			r := container(id)
			if prev != nil && r.parent == nil && r != prev && !r.isAncestorOf(prev) {
				prev.addChild(r)
			}
			prev = r
		}
		// (1)(C) the last reference is the message's parent.
		if prev != nil && (prev == t || t.isAncestorOf(prev)) {
			prev = nil
		}
		if prev != nil {
			prev.addChild(t)
		} else if t.parent != nil {
			t.parent.removeChild(t)
		}
	}
	// (2) The root set: every container without a parent.
	root := &thread{}
	seen := map[*thread]bool{}
	add := func(t *thread) {
		for t.parent != nil {
			t = t.parent
		}
		if !seen[t] {
			seen[t] = true
			root.children = append(root.children, t)
		}
	}
	for _, t := range all {
		add(t)
	}
	for _, t := range byID {
		add(t)
	}
	for _, t := range root.children {
		t.parent = root
	}
	// (3) Prune dummies.
	prune(root, true)
	// (4) Sort the top level by sent date (a dummy: its first child's,
	// its children sorted first).
	for _, t := range root.children {
		if t.msg == nil {
			sortSiblings(t)
		}
	}
	sortSiblings(root)
	// (5) Merge threads with the same base subject.
	subjects := map[string]*thread{}
	subjectOf := func(t *thread) (string, bool) {
		m := t.firstMsg()
		return m.subject, m.reply
	}
	for _, t := range root.children {
		s, reply := subjectOf(t)
		if s == "" {
			continue
		}
		old, ok := subjects[s]
		if !ok || (t.msg == nil && old.msg != nil) {
			subjects[s] = t
			continue
		}
		if oldReply := old.firstMsg().reply; old.msg != nil && t.msg != nil && oldReply && !reply {
			subjects[s] = t
		}
	}
	for _, t := range slices.Clone(root.children) {
		s, reply := subjectOf(t)
		if s == "" || t.parent != root {
			continue
		}
		old := subjects[s]
		if old == nil || old == t {
			continue
		}
		switch {
		case old.msg == nil && t.msg == nil:
			for _, ch := range slices.Clone(t.children) {
				old.addChild(ch)
			}
			root.removeChild(t)
		case old.msg == nil:
			old.addChild(t)
		case t.msg == nil:
			t.addChild(old)
			subjects[s] = t
		case reply && !old.msg.reply:
			old.addChild(t)
		default:
			d := &thread{}
			i := slices.Index(root.children, old)
			root.children[i] = d
			d.parent = root
			old.parent = nil
			d.addChild(old)
			d.addChild(t)
			subjects[s] = d
		}
	}
	// (6) Sort every set of siblings by sent date.
	var sortAll func(t *thread)
	sortAll = func(t *thread) {
		for _, ch := range t.children {
			sortAll(ch)
		}
		sortSiblings(t)
	}
	sortAll(root)
	for _, t := range root.children {
		t.parent = nil
	}
	return root.children
}

func sortSiblings(t *thread) {
	slices.SortStableFunc(t.children, func(a, b *thread) int { return bySent(a.firstMsg(), b.firstMsg()) })
}

// prune removes dummies (RFC 5256 §4 REFERENCES (3)): one without
// children goes; one with children is replaced by them, except at the top
// level when it has more than one.
func prune(t *thread, top bool) {
	var out []*thread
	for _, ch := range t.children {
		prune(ch, false)
		if ch.msg != nil {
			out = append(out, ch)
			continue
		}
		switch {
		case len(ch.children) == 0:
		case top && len(ch.children) > 1:
			out = append(out, ch)
		default:
			for _, g := range ch.children {
				g.parent = t
				out = append(out, g)
			}
		}
	}
	t.children = out
}
