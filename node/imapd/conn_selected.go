package imapd

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// Selected-state commands of the own protocol layer: FETCH, STORE,
// SEARCH, COPY, MOVE, EXPUNGE, their UID forms, and IDLE; and the update
// (EXISTS, EXPUNGE, FETCH FLAGS) after every command.

// parseNumSet reads a sequence set or UID set (RFC 9051 §9 sequence-set);
// "*" is 0, as go-imap's sets have it, and "$" is the saved search result
// (RFC 5182).
func parseNumSet(s string, uid bool) (imap.NumSet, error) {
	if s == "$" {
		return imap.SearchRes(), nil
	}
	num := func(x string) (uint32, error) {
		if x == "*" {
			return 0, nil
		}
		n, err := strconv.ParseUint(x, 10, 32)
		if err != nil || n == 0 {
			return 0, errBad("Bad sequence set " + s)
		}
		return uint32(n), nil
	}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, ":")
		start, err := num(a)
		if err != nil {
			return nil, err
		}
		stop := start
		if isRange {
			if stop, err = num(b); err != nil {
				return nil, err
			}
		}
		if uid {
			uids = append(uids, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)})
		} else {
			seqs = append(seqs, imap.SeqRange{Start: start, Stop: stop})
		}
	}
	if uid {
		return uids, nil
	}
	return seqs, nil
}

func numSetArg(v wire.Value, uid bool) (imap.NumSet, error) {
	if v.Kind != wire.Atom || v.HasSection {
		return nil, errBad("Expected a sequence set")
	}
	return parseNumSet(v.Str, uid)
}

// connUpdates writes untagged updates to a conn; flush sends each at once
// (IDLE).
type connUpdates struct {
	c     *conn
	flush bool
}

func (u connUpdates) done() error {
	if u.flush {
		return u.c.w.Flush()
	}
	return u.c.w.Err()
}

func (u connUpdates) WriteExpunge(seq uint32) error {
	u.c.w.Raw("* ").Number(uint64(seq)).Raw(" EXPUNGE").CRLF()
	return u.done()
}

func (u connUpdates) WriteNumMessages(n uint32) error {
	u.c.w.Raw("* ").Number(uint64(n)).Raw(" EXISTS").CRLF()
	return u.done()
}

func (u connUpdates) WriteNumRecent(n uint32) error {
	u.c.w.Raw("* ").Number(uint64(n)).Raw(" RECENT").CRLF()
	return u.done()
}

func (u connUpdates) WriteMailboxFlags(flags []imap.Flag) error {
	u.c.w.Raw("* FLAGS (").Raw(joinFlags(flags)).Raw(")").CRLF()
	if u.c.s.sel != nil && !u.c.s.sel.readOnly {
		u.c.w.Raw("* OK [PERMANENTFLAGS (").Raw(joinFlags(flags)).Raw(` \*)] Flags permitted`).CRLF()
	}
	return u.done()
}

func (u connUpdates) WriteMessageFlags(seq uint32, uid imap.UID, flags []imap.Flag, modseq uint64) error {
	u.c.w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(uid)).Raw(" FLAGS (").Raw(joinFlags(flags)).Raw(")")
	if modseq != 0 {
		u.c.w.Raw(" MODSEQ (").Number(modseq).Raw(")")
	}
	u.c.w.Raw(")").CRLF()
	return u.done()
}

func (u connUpdates) WriteCopyData(d *imap.CopyData) error {
	u.c.w.Raw("* OK [COPYUID ").Number(uint64(d.UIDValidity)).SP().Raw(d.SourceUIDs.String()).SP().Raw(d.DestUIDs.String()).Raw("] Moved").CRLF()
	return u.done()
}

// uidCommand splits "UID FETCH ..." into its sub-command.
func (c *conn) cmdUID(cmd *wire.Command) error {
	if len(cmd.Args) == 0 || cmd.Args[0].Kind != wire.Atom {
		return errBad("UID needs a command")
	}
	sub := &wire.Command{Tag: cmd.Tag, Name: strings.ToUpper(cmd.Args[0].Str), Args: cmd.Args[1:]}
	switch sub.Name {
	case "FETCH":
		return c.fetchCmd(sub, true)
	case "STORE":
		return c.storeCmd(sub, true)
	case "SEARCH":
		return c.searchCmd(sub, true)
	case "SORT":
		return c.sortCmd(sub, true)
	case "THREAD":
		return c.threadCmd(sub, true)
	case "COPY":
		return c.copyCmd(sub, true)
	case "MOVE":
		return c.moveCmd(sub, true)
	case "EXPUNGE":
		return c.expungeCmd(sub, true)
	}
	return errBad("Unknown UID command " + cmd.Args[0].Str)
}

func (c *conn) cmdFetch(cmd *wire.Command) error   { return c.fetchCmd(cmd, false) }
func (c *conn) cmdStore(cmd *wire.Command) error   { return c.storeCmd(cmd, false) }
func (c *conn) cmdSearch(cmd *wire.Command) error  { return c.searchCmd(cmd, false) }
func (c *conn) cmdCopy(cmd *wire.Command) error    { return c.copyCmd(cmd, false) }
func (c *conn) cmdMove(cmd *wire.Command) error    { return c.moveCmd(cmd, false) }
func (c *conn) cmdExpunge(cmd *wire.Command) error { return c.expungeCmd(cmd, false) }

func (c *conn) fetchCmd(cmd *wire.Command, uid bool) error {
	if err := args(cmd, 2, 3); err != nil {
		return err
	}
	set, err := numSetArg(cmd.Args[0], uid)
	if err != nil {
		return err
	}
	o, err := parseFetchItems(cmd.Args[1])
	if err != nil {
		return err
	}
	o.UID = o.UID || uid
	if len(cmd.Args) == 3 {
		// RFC 7162 §3.1.4: FETCH ... (CHANGEDSINCE modseq).
		// RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE m VANISHED).
		// RFC 9394 §3.3: FETCH ... (PARTIAL range), with or without them.
		mods, partial, err := splitPartial(cmd.Args[2])
		if err != nil {
			return err
		}
		if len(mods.List) > 0 {
			n, vanished, err := c.fetchModifiers(mods, uid)
			if err != nil {
				return err
			}
			o.ChangedSince, o.ModSeq = n, true
			if vanished {
				if err := c.fetchVanished(set, n); err != nil {
					return err
				}
			}
		}
		if partial != nil {
			if set, err = c.s.partialOf(set, *partial); err != nil {
				return err
			}
		}
	}
	if o.ModSeq {
		c.enableCondstore()
	}
	return c.s.fetch(newConnFetch(c), set, o)
}

func (c *conn) storeCmd(cmd *wire.Command, uid bool) error {
	if len(cmd.Args) < 3 {
		return errBad("STORE takes a set, an item and flags")
	}
	set, err := numSetArg(cmd.Args[0], uid)
	if err != nil {
		return err
	}
	var opts *imap.StoreOptions
	if m := cmd.Args[1]; m.Kind == wire.List {
		// RFC 7162 §3.1.3: STORE set (UNCHANGEDSINCE modseq) item flags.
		if len(m.List) != 2 || !strings.EqualFold(m.List[0].Str, "UNCHANGEDSINCE") {
			return errBad("Unknown STORE modifier")
		}
		n, err := strconv.ParseUint(m.List[1].Str, 10, 63)
		if err != nil {
			return errBad("Bad UNCHANGEDSINCE value")
		}
		opts = &imap.StoreOptions{UnchangedSince: n}
		c.enableCondstore()
		cmd = &wire.Command{Tag: cmd.Tag, Name: cmd.Name, Args: append([]wire.Value{cmd.Args[0]}, cmd.Args[2:]...)}
		if len(cmd.Args) < 3 {
			return errBad("STORE takes a set, an item and flags")
		}
	}
	item := strings.ToUpper(cmd.Args[1].Str)
	f := &imap.StoreFlags{}
	if strings.HasSuffix(item, ".SILENT") {
		f.Silent, item = true, strings.TrimSuffix(item, ".SILENT")
	}
	switch item {
	case "FLAGS":
		f.Op = imap.StoreFlagsSet
	case "+FLAGS":
		f.Op = imap.StoreFlagsAdd
	case "-FLAGS":
		f.Op = imap.StoreFlagsDel
	default:
		return errBad("Unknown STORE item " + cmd.Args[1].Str)
	}
	flags := cmd.Args[2:]
	if len(flags) == 1 && flags[0].Kind == wire.List {
		flags = flags[0].List
	}
	for _, v := range flags {
		if v.Kind != wire.Atom || v.HasSection {
			return errBad("Flags are atoms")
		}
		if strings.EqualFold(v.Str, `\Recent`) || v.Str == `\*` {
			return errBad("Cannot store " + v.Str)
		}
		f.Flags = append(f.Flags, imap.Flag(canonicalFlag(v.Str)))
	}
	return c.s.store(newConnFetch(c), set, f, opts)
}

// canonicalFlag spells system flags as RFC 9051 does (flags are
// case-insensitive; stored keywords keep the client's spelling).
func canonicalFlag(f string) string {
	for _, sf := range systemFlags {
		if strings.EqualFold(f, string(sf)) {
			return string(sf)
		}
	}
	return f
}

func (c *conn) copyCmd(cmd *wire.Command, uid bool) error {
	set, dest, err := c.setAndMailbox(cmd, uid)
	if err != nil {
		return err
	}
	d, err := c.s.Copy(set, dest)
	if err != nil {
		return err
	}
	if d != nil {
		return okWith{"COPYUID " + strconv.FormatUint(uint64(d.UIDValidity), 10) + " " + d.SourceUIDs.String() + " " + d.DestUIDs.String(), "COPY completed"}
	}
	return nil
}

func (c *conn) moveCmd(cmd *wire.Command, uid bool) error {
	set, dest, err := c.setAndMailbox(cmd, uid)
	if err != nil {
		return err
	}
	return c.s.move(connUpdates{c: c}, set, dest)
}

// setAndMailbox reads the arguments COPY and MOVE share: a sequence or UID
// set, then the destination mailbox.
func (c *conn) setAndMailbox(cmd *wire.Command, uid bool) (imap.NumSet, string, error) {
	if err := args(cmd, 2, 2); err != nil {
		return nil, "", err
	}
	set, err := numSetArg(cmd.Args[0], uid)
	if err != nil {
		return nil, "", err
	}
	dest, err := c.mailboxArg(cmd.Args[1])
	if err != nil {
		return nil, "", err
	}
	return set, dest, nil
}

func (c *conn) expungeCmd(cmd *wire.Command, uid bool) error {
	var set *imap.UIDSet
	if uid {
		if err := args(cmd, 1, 1); err != nil {
			return err
		}
		ns, err := numSetArg(cmd.Args[0], true)
		if err != nil {
			return err
		}
		us, ok := ns.(imap.UIDSet)
		if !ok {
			return errBad("UID EXPUNGE takes a UID set")
		}
		set = &us
	} else if err := args(cmd, 0, 0); err != nil {
		return err
	}
	if err := c.s.expunge(connUpdates{c: c}.WriteExpunge, set); err != nil {
		return err
	}
	return c.expungeDone(cmd)
}

// cmdIdle implements IDLE (RFC 2177): updates are sent as they happen
// until the client sends DONE.
func (c *conn) cmdIdle(cmd *wire.Command) error {
	if err := args(cmd, 0, 0); err != nil {
		return err
	}
	c.w.Continuation("idling")
	if err := c.w.Flush(); err != nil {
		return err
	}
	stop := make(chan struct{})
	lineErr := make(chan error, 1)
	go func() {
		defer close(stop)
		c.nc.SetReadDeadline(time.Time{})
		l, err := c.r.ReadLine()
		if err == nil && !strings.EqualFold(strings.TrimSpace(l), "DONE") {
			err = errBad("Expected DONE")
		}
		lineErr <- err
	}()
	bye := c.s.bye
	c.s.bye = func(text string) {
		c.w.Status("*", "BYE", "", text)
		c.w.Flush()
		c.quit = true
		c.nc.Close()
	}
	err := c.s.idle(connUpdates{c: c, flush: true}, stop)
	c.s.bye = bye
	<-stop
	if lerr := <-lineErr; lerr != nil && err == nil {
		var bad errBad
		if errors.As(lerr, &bad) {
			return lerr
		}
		c.quit = true
		return errDone
	}
	if c.quit {
		return errDone
	}
	return err
}

// update reports what changed in the selected mailbox before a command's
// completion; EXPUNGE is held back during FETCH, STORE and SEARCH (RFC 9051
// §7.4.1).
func (c *conn) update(cmd *wire.Command) {
	if c.s.sel == nil || c.quit {
		return
	}
	allowExpunge := true
	switch cmd.Name {
	case "FETCH", "STORE", "SEARCH":
		allowExpunge = false
	}
	if err := c.s.poll(connUpdates{c: c}, allowExpunge); err != nil {
		c.srv.log.Warn("imap update", "err", err)
	}
}

// searchCmd implements SEARCH (RFC 9051 §6.4.4) with ESEARCH's RETURN
// (RFC 4731) and SEARCHRES's SAVE (RFC 5182).
func (c *conn) searchCmd(cmd *wire.Command, uid bool) error {
	a := cmd.Args
	opts := &imap.SearchOptions{}
	esearch := false
	var partial *partialRange
	if len(a) >= 2 && a[0].Kind == wire.Atom && strings.EqualFold(a[0].Str, "RETURN") {
		if a[1].Kind != wire.List {
			return errBad("RETURN takes a list")
		}
		esearch = true
		ret := a[1].List
		for i := 0; i < len(ret); i++ {
			switch strings.ToUpper(ret[i].Str) {
			case "MIN":
				opts.ReturnMin = true
			case "MAX":
				opts.ReturnMax = true
			case "ALL":
				opts.ReturnAll = true
			case "COUNT":
				opts.ReturnCount = true
			case "SAVE":
				opts.ReturnSave = true
			case "PARTIAL":
				var err error
				if partial, i, err = partialOption(ret, i, partial); err != nil {
					return err
				}
			default:
				return errBad("Unknown RETURN option " + ret[i].Str)
			}
		}
		if partial != nil && opts.ReturnAll {
			return errBad("PARTIAL and ALL exclude each other (RFC 9394)")
		}
		if len(ret) == 0 {
			opts.ReturnAll = true
		}
		a = a[2:]
	}
	if len(a) >= 2 && a[0].Kind == wire.Atom && strings.EqualFold(a[0].Str, "CHARSET") {
		cs, _ := a[1].AString()
		if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADCHARSET (UTF-8 US-ASCII)", Text: "Unsupported charset"}
		}
		a = a[2:]
	}
	if len(a) == 0 {
		return errBad("SEARCH needs a criterion")
	}
	p := &searchParser{args: a}
	crit := &imap.SearchCriteria{}
	for p.more() {
		if err := p.key(crit); err != nil {
			return err
		}
	}
	if c.rev2 && !esearch {
		esearch, opts.ReturnAll = true, true
	}
	d, err := c.s.search(uid, crit, opts)
	if err != nil {
		return err
	}
	withModSeq := hasModSeq(crit)
	if withModSeq {
		c.enableCondstore()
	}
	if !esearch {
		c.w.Raw("* SEARCH")
		if d.All != nil {
			nums := numsOf(d.All)
			for _, n := range nums {
				c.w.SP().Number(uint64(n))
			}
		}
		if withModSeq && d.Count > 0 {
			c.w.Raw(" (MODSEQ ").Number(d.ModSeq).Raw(")") // RFC 7162 §3.1.5
		}
		c.w.CRLF()
		return nil
	}
	var picked []uint32
	if partial != nil {
		picked = partial.pick(numsOf(d.All))
		if opts.ReturnSave {
			c.s.saveResult(picked, uid)
		}
	}
	if opts.ReturnSave && !opts.ReturnMin && !opts.ReturnMax && !opts.ReturnAll && !opts.ReturnCount && partial == nil {
		return nil // RFC 5182 §2.1: SAVE alone sends no ESEARCH
	}
	c.w.Raw(`* ESEARCH (TAG `).String(cmd.Tag).Raw(")")
	if uid {
		c.w.Raw(" UID")
	}
	if opts.ReturnMin && d.Count > 0 {
		c.w.Raw(" MIN ").Number(uint64(d.Min))
	}
	if opts.ReturnMax && d.Count > 0 {
		c.w.Raw(" MAX ").Number(uint64(d.Max))
	}
	if opts.ReturnAll && d.Count > 0 {
		c.w.Raw(" ALL ").Raw(d.All.String())
	}
	if opts.ReturnCount {
		c.w.Raw(" COUNT ").Number(uint64(d.Count))
	}
	if partial != nil {
		partial.write(c, picked)
	}
	if withModSeq && d.Count > 0 {
		c.w.Raw(" MODSEQ ").Number(d.ModSeq) // RFC 7162 §3.2
	}
	c.w.CRLF()
	return nil
}

// hasModSeq says a MODSEQ criterion appears anywhere in c.
func hasModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if hasModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if hasModSeq(&c.Or[i][0]) || hasModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

func numsOf(s imap.NumSet) []uint32 {
	switch s := s.(type) {
	case imap.SeqSet:
		n, _ := s.Nums()
		return n
	case imap.UIDSet:
		var out []uint32
		for _, r := range s {
			for u := r.Start; u <= r.Stop && u != 0; u++ {
				out = append(out, uint32(u))
				if u == r.Stop {
					break
				}
			}
		}
		return out
	}
	return nil
}

// searchParser reads search keys (RFC 9051 §6.4.4, search-key).
type searchParser struct {
	args []wire.Value
	i    int
}

func (p *searchParser) more() bool { return p.i < len(p.args) }

func (p *searchParser) next() (wire.Value, error) {
	if !p.more() {
		return wire.Value{}, errBad("SEARCH key needs an argument")
	}
	v := p.args[p.i]
	p.i++
	return v, nil
}

func (p *searchParser) str() (string, error) {
	v, err := p.next()
	if err != nil {
		return "", err
	}
	s, ok := v.AString()
	if !ok {
		return "", errBad("Expected a string")
	}
	return s, nil
}

func (p *searchParser) date() (time.Time, error) {
	s, err := p.str()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("_2-Jan-2006", s)
	if err != nil {
		return time.Time{}, errBad("Bad date " + s)
	}
	return t, nil
}

func (p *searchParser) number() (int64, error) {
	s, err := p.str()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errBad("Bad number " + s)
	}
	return n, nil
}

func (p *searchParser) key(c *imap.SearchCriteria) error {
	v, err := p.next()
	if err != nil {
		return err
	}
	if v.Kind == wire.List {
		sub := &searchParser{args: v.List}
		if !sub.more() {
			return errBad("Empty search list")
		}
		for sub.more() {
			if err := sub.key(c); err != nil {
				return err
			}
		}
		return nil
	}
	if v.Kind != wire.Atom || v.HasSection {
		return errBad("Expected a search key")
	}
	k := strings.ToUpper(v.Str)
	flag := func(f imap.Flag, on bool) {
		if on {
			c.Flag = append(c.Flag, f)
		} else {
			c.NotFlag = append(c.NotFlag, f)
		}
	}
	header := func(name string) error {
		s, err := p.str()
		if err == nil {
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: name, Value: s})
		}
		return err
	}
	switch k {
	case "ALL":
	case "ANSWERED", "UNANSWERED":
		flag(imap.FlagAnswered, k == "ANSWERED")
	case "DELETED", "UNDELETED":
		flag(imap.FlagDeleted, k == "DELETED")
	case "DRAFT", "UNDRAFT":
		flag(imap.FlagDraft, k == "DRAFT")
	case "FLAGGED", "UNFLAGGED":
		flag(imap.FlagFlagged, k == "FLAGGED")
	case "SEEN", "UNSEEN":
		flag(imap.FlagSeen, k == "SEEN")
	case "RECENT", "OLD":
		// \Recent as the session sees it (selected.flagsOf); sel.static
		// resolves it.
		flag(`\Recent`, k == "RECENT")
	case "NEW":
		flag(`\Recent`, true)
		flag(imap.FlagSeen, false)
	case "KEYWORD", "UNKEYWORD":
		s, err := p.str()
		if err != nil {
			return err
		}
		flag(imap.Flag(canonicalFlag(s)), k == "KEYWORD")
	case "FROM", "TO", "CC", "BCC", "SUBJECT":
		return header(map[string]string{"FROM": "From", "TO": "To", "CC": "Cc", "BCC": "Bcc", "SUBJECT": "Subject"}[k])
	case "HEADER":
		name, err := p.str()
		if err != nil {
			return err
		}
		return header(name)
	case "BODY", "TEXT":
		s, err := p.str()
		if err != nil {
			return err
		}
		if k == "BODY" {
			c.Body = append(c.Body, s)
		} else {
			c.Text = append(c.Text, s)
		}
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		d, err := p.date()
		if err != nil {
			return err
		}
		since, before := &c.Since, &c.Before
		if strings.HasPrefix(k, "SENT") {
			since, before = &c.SentSince, &c.SentBefore
		}
		switch strings.TrimPrefix(k, "SENT") {
		case "BEFORE":
			*before = d
		case "SINCE":
			*since = d
		case "ON":
			*since, *before = d, d.AddDate(0, 0, 1)
		}
	case "LARGER", "SMALLER":
		n, err := p.number()
		if err != nil {
			return err
		}
		if k == "LARGER" {
			c.Larger = n
		} else {
			c.Smaller = n
		}
	case "UID":
		s, err := p.str()
		if err != nil {
			return err
		}
		set, err := parseNumSet(s, true)
		if err != nil {
			return err
		}
		c.UID = append(c.UID, set.(imap.UIDSet))
	case "MODSEQ":
		// RFC 7162 §3.1.5: MODSEQ [entry-name entry-type] modseq; flags
		// have no MODSEQ of their own here, so an entry name matches as
		// the message's.
		if p.i+2 < len(p.args) && p.args[p.i].Kind == wire.String {
			p.i += 2
		}
		n, err := p.number()
		if err != nil {
			return err
		}
		c.ModSeq = &imap.SearchCriteriaModSeq{ModSeq: uint64(n)}
	case "NOT":
		sub := &imap.SearchCriteria{}
		if err := p.key(sub); err != nil {
			return err
		}
		c.Not = append(c.Not, *sub)
	case "OR":
		a, b := &imap.SearchCriteria{}, &imap.SearchCriteria{}
		if err := p.key(a); err != nil {
			return err
		}
		if err := p.key(b); err != nil {
			return err
		}
		c.Or = append(c.Or, [2]imap.SearchCriteria{*a, *b})
	default:
		set, err := parseNumSet(v.Str, false)
		if err != nil {
			return errBad("Unknown search key " + v.Str)
		}
		if imap.IsSearchRes(set) {
			c.UID = append(c.UID, set.(imap.UIDSet))
		} else {
			c.SeqNum = append(c.SeqNum, set.(imap.SeqSet))
		}
	}
	return nil
}
