package imapd

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// SORT (RFC 5256 §3) and ESORT (RFC 5267 §3): the messages a search
// matches, ordered by ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT (base
// subject) or TO, or by SORT=DISPLAY's DISPLAYFROM and DISPLAYTO (RFC
// 5957: the name a client shows), each possibly REVERSE; ties go by
// sequence number. Strings compare with i;ascii-casemap.

type sortKey struct {
	by      string
	reverse bool
}

// parseSortCriteria reads "(" sort-criterion *(SP sort-criterion) ")".
func parseSortCriteria(v wire.Value) ([]sortKey, error) {
	if v.Kind != wire.List || len(v.List) == 0 {
		return nil, errBad("SORT needs a list of sort criteria")
	}
	var keys []sortKey
	reverse := false
	for _, x := range v.List {
		if x.Kind != wire.Atom || x.HasSection {
			return nil, errBad("Expected a sort criterion")
		}
		k := strings.ToUpper(x.Str)
		switch k {
		case "REVERSE":
			if reverse {
				return nil, errBad("REVERSE REVERSE")
			}
			reverse = true
			continue
		case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO":
		default:
			return nil, errBad("Unknown sort criterion " + x.Str)
		}
		keys = append(keys, sortKey{k, reverse})
		reverse = false
	}
	if reverse {
		return nil, errBad("REVERSE must precede a sort criterion")
	}
	return keys, nil
}

func compareBy(k string, a, b *sortMsg) int {
	switch k {
	case "ARRIVAL":
		return cmp.Compare(a.arrival, b.arrival)
	case "CC":
		return strings.Compare(a.cc, b.cc)
	case "DATE":
		return cmp.Compare(a.sent, b.sent)
	case "FROM":
		return strings.Compare(a.from, b.from)
	case "SIZE":
		return cmp.Compare(a.size, b.size)
	case "SUBJECT":
		return strings.Compare(a.subject, b.subject)
	case "TO":
		return strings.Compare(a.to, b.to)
	case "DISPLAYFROM":
		return strings.Compare(a.displayFrom, b.displayFrom)
	case "DISPLAYTO":
		return strings.Compare(a.displayTo, b.displayTo)
	}
	return 0
}

// sortMsgs orders msgs by keys, then by sequence number (RFC 5256 §3).
func sortMsgs(msgs []sortMsg, keys []sortKey) {
	slices.SortStableFunc(msgs, func(a, b sortMsg) int {
		for _, k := range keys {
			c := compareBy(k.by, &a, &b)
			if k.reverse {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.seq, b.seq)
	})
}

// searchArgs reads the "charset search-key..." tail shared by SORT and
// THREAD (their charset is not optional) into criteria.
func searchArgs(a []wire.Value) (*imap.SearchCriteria, error) {
	if len(a) < 2 {
		return nil, errBad("Expected a charset and search criteria")
	}
	cs, ok := a[0].AString()
	if !ok {
		return nil, errBad("Expected a charset")
	}
	if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADCHARSET (UTF-8 US-ASCII)", Text: "Unsupported charset"}
	}
	p := &searchParser{args: a[1:]}
	crit := &imap.SearchCriteria{}
	for p.more() {
		if err := p.key(crit); err != nil {
			return nil, err
		}
	}
	return crit, nil
}

// matching runs the search and reads the sort data of what it matched.
func (c *conn) matching(crit *imap.SearchCriteria, refs bool) ([]sortMsg, error) {
	d, err := c.s.search(true, crit, &imap.SearchOptions{ReturnAll: true})
	if err != nil {
		return nil, err
	}
	uids, _ := d.All.(imap.UIDSet)
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return nil, reply(errNoSelectable)
	}
	msgs, err := s.sortData(uids, refs)
	if err != nil {
		return nil, reply(err)
	}
	return msgs, nil
}

func (c *conn) cmdSort(cmd *wire.Command) error { return c.sortCmd(cmd, false) }

// sortCmd implements SORT and UID SORT, with ESORT's RETURN options.
func (c *conn) sortCmd(cmd *wire.Command, uid bool) error {
	a := cmd.Args
	var ret map[string]bool
	var partial *partialRange
	if len(a) >= 2 && a[0].Kind == wire.Atom && strings.EqualFold(a[0].Str, "RETURN") {
		if a[1].Kind != wire.List {
			return errBad("RETURN takes a list")
		}
		ret = map[string]bool{}
		opts := a[1].List
		for i := 0; i < len(opts); i++ {
			switch k := strings.ToUpper(opts[i].Str); k {
			case "MIN", "MAX", "COUNT", "ALL":
				ret[k] = true
			case "PARTIAL":
				var err error
				if partial, i, err = partialOption(opts, i, partial); err != nil {
					return err
				}
			default:
				return errBad("Unknown SORT RETURN option " + opts[i].Str)
			}
		}
		if partial != nil && ret["ALL"] {
			return errBad("PARTIAL and ALL exclude each other (RFC 9394)")
		}
		if len(opts) == 0 {
			ret["ALL"] = true
		}
		a = a[2:]
	}
	if len(a) < 3 {
		return errBad("SORT takes (criteria), a charset and search criteria")
	}
	keys, err := parseSortCriteria(a[0])
	if err != nil {
		return err
	}
	crit, err := searchArgs(a[1:])
	if err != nil {
		return err
	}
	msgs, err := c.matching(crit, false)
	if err != nil {
		return err
	}
	sortMsgs(msgs, keys)
	nums := make([]uint32, len(msgs))
	for i, m := range msgs {
		nums[i] = m.seq
		if uid {
			nums[i] = m.uid
		}
	}
	if ret == nil {
		c.w.Raw("* SORT")
		for _, n := range nums {
			c.w.SP().Number(uint64(n))
		}
		c.w.CRLF()
		return nil
	}
	// RFC 5267 §3.2: MIN and MAX are the first and last in sort order,
	// ALL the result in sort order.
	c.w.Raw(`* ESEARCH (TAG `).String(cmd.Tag).Raw(")")
	if uid {
		c.w.Raw(" UID")
	}
	if len(nums) > 0 {
		if ret["MIN"] {
			c.w.Raw(" MIN ").Number(uint64(nums[0]))
		}
		if ret["MAX"] {
			c.w.Raw(" MAX ").Number(uint64(nums[len(nums)-1]))
		}
		if ret["ALL"] {
			c.w.Raw(" ALL ").Raw(orderedSet(nums))
		}
	}
	if ret["COUNT"] {
		c.w.Raw(" COUNT ").Number(uint64(len(nums)))
	}
	if partial != nil {
		partial.write(c, partial.pick(nums))
	}
	c.w.CRLF()
	return nil
}

// orderedSet writes numbers as a sequence-set that keeps their order:
// runs of consecutive ascending numbers become ranges.
func orderedSet(nums []uint32) string {
	var sb strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(uint64(nums[i]), 10))
		if j > i {
			sb.WriteByte(':')
			sb.WriteString(strconv.FormatUint(uint64(nums[j]), 10))
		}
		i = j + 1
	}
	return sb.String()
}
