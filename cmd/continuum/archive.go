package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// scopeFlags are the --domain/--user pair of retention and hold commands.
type scopeFlags struct{ domain, user *string }

func newScopeFlags(a *adminFlags) scopeFlags {
	return scopeFlags{a.fs.String("domain", "", "a local domain"), a.fs.String("user", "", "a user's address")}
}

func (s scopeFlags) check(usage string) error {
	if (*s.domain == "") == (*s.user == "") {
		return errors.New("usage: " + usage)
	}
	return nil
}

func (s scopeFlags) String() string {
	if *s.domain != "" {
		return "domain " + *s.domain
	}
	return "user " + *s.user
}

func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runRetention(args []string) error {
	const usage = "continuum retention set (--domain D | --user U) --days N | list [--json] | run"
	if len(args) == 0 {
		return errors.New("usage: " + usage)
	}
	a := newAdminFlags("retention " + args[0])
	switch args[0] {
	case "set":
		sc := newScopeFlags(a)
		days := a.fs.Int("days", -1, "keep messages this many days after their INTERNALDATE (0 removes the policy)")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		if err := sc.check(usage); err != nil {
			return err
		}
		if *days < 0 {
			return errors.New("--days N is required (0 removes the policy)")
		}
		if _, err := call(a, adminpb.AdminClient.RetentionSet, &adminpb.RetentionSetRequest{Domain: *sc.domain, User: *sc.user, Days: uint32(*days)}); err != nil {
			return err
		}
		if *days == 0 {
			fmt.Println("retention policy of", sc, "removed")
		} else {
			fmt.Printf("retention of %s: %d days\n", sc, *days)
		}
		return nil
	case "list":
		asJSON := a.fs.Bool("json", false, "print JSON")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.RetentionList, &adminpb.RetentionListRequest{})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(res)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCOPE\tDAYS\tSET")
		for _, p := range res.Policies {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Scope, p.Days, msTime(p.SetUnixMs))
		}
		tw.Flush()
		fmt.Printf("\nmessages: %d live, %d vaulted (expunged, kept), %d under legal hold\n", res.Messages, res.VaultedMessages, res.HeldMessages)
		fmt.Printf("due now: %d   next expiry: %s\n", res.DueMessages, msTime(res.NextExpiryUnixMs))
		return nil
	case "run":
		a.fs.Lookup("timeout").DefValue = "5m0s"
		*a.timeout = 5 * time.Minute
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.RetentionRun, &adminpb.RetentionRunRequest{})
		if err != nil {
			return err
		}
		fmt.Printf("retention run: %d messages removed (%d log entries)\n", res.Removed, res.Entries)
		return nil
	}
	return fmt.Errorf("unknown retention subcommand %q", args[0])
}

func runHold(args []string) error {
	const usage = "continuum hold place (--domain D | --user U) --reason TEXT | release (--domain D | --user U) | list [--json]"
	if len(args) == 0 {
		return errors.New("usage: " + usage)
	}
	a := newAdminFlags("hold " + args[0])
	switch args[0] {
	case "place", "release":
		sc := newScopeFlags(a)
		var reason *string
		if args[0] == "place" {
			reason = a.fs.String("reason", "", "why (the matter); required")
		}
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		if err := sc.check(usage); err != nil {
			return err
		}
		if reason != nil {
			if strings.TrimSpace(*reason) == "" {
				return errors.New("--reason TEXT is required")
			}
			if _, err := call(a, adminpb.AdminClient.HoldPlace, &adminpb.HoldPlaceRequest{Domain: *sc.domain, User: *sc.user, Reason: *reason}); err != nil {
				return err
			}
			fmt.Println("legal hold placed on", sc)
			return nil
		}
		if _, err := call(a, adminpb.AdminClient.HoldRelease, &adminpb.HoldReleaseRequest{Domain: *sc.domain, User: *sc.user}); err != nil {
			return err
		}
		fmt.Println("legal hold on", sc, "released")
		return nil
	case "list":
		asJSON := a.fs.Bool("json", false, "print JSON")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.HoldList, &adminpb.HoldListRequest{})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(res)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCOPE\tMESSAGES\tPLACED\tBY\tINDEX\tREASON")
		for _, h := range res.Holds {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", h.Scope, h.Messages, msTime(h.PlacedUnixMs), h.PlacedBy, h.PlacedIndex, h.Reason)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown hold subcommand %q", args[0])
}

func runAudit(args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return errors.New("usage: continuum audit list [--json] [--limit N]")
	}
	a := newAdminFlags("audit list")
	asJSON := a.fs.Bool("json", false, "print JSON")
	limit := a.fs.Uint("limit", 0, "newest N entries (0: all)")
	if _, err := a.parse(args[1:]); err != nil {
		return err
	}
	res, err := call(a, adminpb.AdminClient.AuditList, &adminpb.AuditListRequest{Limit: uint32(*limit)})
	if err != nil {
		return err
	}
	if *asJSON {
		type entry struct {
			Index   uint64 `json:"index"`
			Time    string `json:"time"`
			Actor   string `json:"actor"`
			Action  string `json:"action"`
			Detail  string `json:"detail,omitempty"`
			Outcome string `json:"outcome"`
		}
		out := []entry{}
		for _, e := range res.Entries {
			out = append(out, entry{e.Index, msTime(e.TimeUnixMs), e.Actor, e.Action, e.Detail, e.Outcome})
		}
		return printJSON(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tWHO\tACTION\tDETAIL\tOUTCOME")
	for _, e := range res.Entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Index, msTime(e.TimeUnixMs), e.Actor, e.Action, e.Detail, e.Outcome)
	}
	return tw.Flush()
}

func runArchive(args []string) error {
	const usage = "continuum archive verify [--all | --data DIR] | restore --user U [--mailbox M --uid N] | search --query Q [--user U] [--from DATE --to DATE] [--include-held] [--json] | export --query Q --format mbox --out PATH"
	if len(args) == 0 {
		return errors.New("usage: " + usage)
	}
	a := newAdminFlags("archive " + args[0])
	switch args[0] {
	case "verify":
		all := a.fs.Bool("all", false, "verify on every node of the cluster (their admin addresses: --servers, else the dev cluster's)")
		servers := a.fs.String("servers", "", "with --all: every node's admin address, comma-separated")
		data := a.fs.String("data", "", "verify a stopped node's data directory (or a copy of it) offline")
		asJSON := a.fs.Bool("json", false, "print JSON")
		a.fs.Lookup("timeout").DefValue = "5m0s"
		*a.timeout = 5 * time.Minute
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		var reports []*adminpb.ArchiveVerifyResponse
		var err error
		if *data != "" {
			var r *adminpb.ArchiveVerifyResponse
			r, err = verifyOffline(*data)
			reports = append(reports, r)
		} else {
			reports, err = verifyOnline(a, *all, *servers)
		}
		if err != nil {
			return err
		}
		return printVerify(reports, *asJSON)
	case "search", "export":
		q := a.fs.String("query", "", "text to find, as IMAP SEARCH TEXT finds it (a substring of the decoded header fields and text parts, case folded; uses the full-text index); required")
		user := a.fs.String("user", "", "only this user's mail")
		from := a.fs.String("from", "", "INTERNALDATE on or after DATE (2006-01-02 or RFC 3339)")
		to := a.fs.String("to", "", "INTERNALDATE on or before DATE (a date means its whole day)")
		held := a.fs.Bool("include-held", false, "also expunged messages kept by a hold or retention (the vault)")
		limit := a.fs.Uint("limit", 0, "at most N messages (0: 1000)")
		asJSON := a.fs.Bool("json", false, "print JSON (search)")
		scan := a.fs.Bool("scan", false, "ignore the full-text index: check every message (slow; to cross-check the index)")
		format := a.fs.String("format", "mbox", "export format: mbox")
		out := a.fs.String("out", "", "export: the mbox file to write (its manifest goes to PATH.manifest.json)")
		a.fs.Lookup("timeout").DefValue = "10m0s"
		*a.timeout = 10 * time.Minute
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		if *q == "" {
			return errors.New("--query Q is required")
		}
		req := &adminpb.ArchiveSearchRequest{Query: *q, User: *user, IncludeHeld: *held, Limit: uint32(*limit), Scan: *scan}
		var err error
		if req.FromUnix, err = parseDate(*from, false); err != nil {
			return err
		}
		if req.ToUnix, err = parseDate(*to, true); err != nil {
			return err
		}
		c, ctx, done, err := a.client()
		if err != nil {
			return err
		}
		defer done()
		if args[0] == "search" {
			res, err := c.ArchiveSearch(ctx, req)
			if err != nil {
				return rpcError(err, *a.server)
			}
			if *asJSON {
				return printJSON(res)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tMAILBOX\tUID\tDATE\tFROM\tSUBJECT\tSTATE")
			for _, h := range res.Hits {
				state := "-"
				switch {
				case h.Vaulted && h.Held:
					state = "expunged, held"
				case h.Vaulted:
					state = "expunged, kept"
				case h.Held:
					state = "held"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.User, h.Mailbox, h.Uid, time.Unix(h.InternalDateUnix, 0).UTC().Format(time.DateOnly), h.From, h.Subject, state)
			}
			tw.Flush()
			more := ""
			if res.Truncated {
				more = " (limit reached: narrow the search or raise --limit)"
			}
			fmt.Printf("\n%d found among %d scanned%s; recorded in the audit log at index %d\n", len(res.Hits), res.Scanned, more, res.AuditIndex)
			return nil
		}
		if *format != "mbox" {
			return fmt.Errorf("--format %s: only mbox is supported", *format)
		}
		if *out == "" {
			return errors.New("--out PATH is required")
		}
		return exportMbox(ctx, c, req, *out, *a.server)
	case "restore":
		user := a.fs.String("user", "", "the user whose vaulted (expunged but kept) messages to restore; required")
		mbox := a.fs.String("mailbox", "", "with --uid: one message, as archive search --include-held shows it")
		uid := a.fs.Uint("uid", 0, "with --mailbox: the message's UID")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		if *user == "" {
			return errors.New("--user U is required")
		}
		res, err := call(a, adminpb.AdminClient.VaultRestore, &adminpb.VaultRestoreRequest{User: *user, Mailbox: *mbox, Uid: uint32(*uid)})
		if err != nil {
			return err
		}
		fmt.Printf("%d messages restored to %s's mailboxes (new UIDs; INBOX where the mailbox is gone)\n", res.Restored, *user)
		return nil
	}
	return fmt.Errorf("unknown archive subcommand %q", args[0])
}

func parseDate(s string, endOfDay bool) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if endOfDay {
			t = t.Add(24*time.Hour - time.Second)
		}
		return t.Unix(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("date %q: want 2006-01-02 or RFC 3339", s)
	}
	return t.Unix(), nil
}

// verifyOnline verifies at the node a talks to, or with all at every node.
// Each node's admin API listens on its own (by default loopback) address,
// which the cluster status does not publish: --servers lists them, and a
// dev cluster's cluster.json has them.
func verifyOnline(a *adminFlags, all bool, servers string) ([]*adminpb.ArchiveVerifyResponse, error) {
	c, ctx, done, err := a.client()
	if err != nil {
		return nil, err
	}
	defer done()
	if !all {
		r, err := c.ArchiveVerify(ctx, &adminpb.ArchiveVerifyRequest{})
		if err != nil {
			return nil, rpcError(err, *a.server)
		}
		return []*adminpb.ArchiveVerifyResponse{r}, nil
	}
	st, err := c.ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
	if err != nil {
		return nil, rpcError(err, *a.server)
	}
	addrs := map[string]string{} // node ID → admin address
	if servers != "" {
		for _, s := range strings.Split(servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				addrs[s] = s
			}
		}
	} else if b, err := os.ReadFile(".dev/cluster.json"); err == nil {
		var dc devCluster
		if json.Unmarshal(b, &dc) == nil {
			for _, n := range dc.Nodes {
				addrs[n.ID] = n.Admin
			}
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("archive verify --all: give every node's admin address with --servers ADDR,ADDR,...")
	}
	var out []*adminpb.ArchiveVerifyResponse
	if servers != "" {
		for _, addr := range addrs {
			r, err := verifyAt(ctx, addr, a.creds)
			if err != nil {
				r = &adminpb.ArchiveVerifyResponse{NodeId: addr, Reason: "unreachable: " + err.Error()}
			}
			out = append(out, r)
		}
		return out, nil
	}
	for _, n := range st.Nodes {
		r, err := verifyAt(ctx, addrs[n.Id], a.creds)
		if err != nil {
			r = &adminpb.ArchiveVerifyResponse{NodeId: n.Id, Reason: "unreachable: " + err.Error()}
		}
		if r.NodeId == "" {
			r.NodeId = n.Id
		}
		out = append(out, r)
	}
	return out, nil
}

func verifyAt(ctx context.Context, addr string, creds adminCreds) (*adminpb.ArchiveVerifyResponse, error) {
	if addr == "" {
		return nil, errors.New("no admin address known")
	}
	conn, err := dialAdmin(addr, creds)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return adminpb.NewAdminClient(conn).ArchiveVerify(ctx, &adminpb.ArchiveVerifyRequest{})
}

// verifyOffline opens a stopped node's state database (or a copy of a
// data directory) and verifies its journal without a running node.
func verifyOffline(dir string) (*adminpb.ArchiveVerifyResponse, error) {
	state := filepath.Join(dir, "state")
	if _, err := os.Stat(state); err != nil {
		return nil, fmt.Errorf("%s: not a node data directory: %w", dir, err)
	}
	db, err := storage.Open(state, storage.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	snap := db.Snapshot()
	defer snap.Close()
	applied, _, err := db.Applied()
	if err != nil {
		return nil, err
	}
	rep, err := raftfsm.VerifyJournal(snap)
	if err != nil {
		return nil, err
	}
	return &adminpb.ArchiveVerifyResponse{NodeId: dir, Ok: rep.OK(), Links: rep.Links, HeadIndex: rep.HeadIndex, BreakIndex: rep.BreakIndex,
		Reason: rep.Reason, AppliedIndex: applied, BlobsChecked: rep.BlobsChecked}, nil
}

func printVerify(reports []*adminpb.ArchiveVerifyResponse, asJSON bool) error {
	bad := 0
	for _, r := range reports {
		if !r.Ok {
			bad++
		}
	}
	if asJSON {
		if err := printJSON(reports); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tAPPLIED\tLINKS\tBLOBS\tRESULT")
		for _, r := range reports {
			res := "ok: the chain verifies"
			if !r.Ok {
				res = "BROKEN"
				if r.BreakIndex != 0 {
					res += fmt.Sprintf(" at index %d", r.BreakIndex)
				}
				res += ": " + r.Reason
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", r.NodeId, r.AppliedIndex, r.Links, r.BlobsChecked, res)
		}
		tw.Flush()
	}
	if bad > 0 {
		return fmt.Errorf("the journal does not verify on %d of %d nodes", bad, len(reports))
	}
	return nil
}

// manifest is the export's record: what was asked, what was written, and
// each message's SHA-256 (of its bytes as stored, before mbox quoting).
type manifest struct {
	Query      string            `json:"query"`
	User       string            `json:"user,omitempty"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to,omitempty"`
	Held       bool              `json:"include_held,omitempty"`
	Server     string            `json:"server"`
	Created    string            `json:"created"`
	AuditIndex uint64            `json:"audit_index"`
	Mbox       string            `json:"mbox"`
	MboxSHA256 string            `json:"mbox_sha256"`
	Messages   []manifestMessage `json:"messages"`
}

type manifestMessage struct {
	User         string `json:"user"`
	Mailbox      string `json:"mailbox"`
	UID          uint32 `json:"uid"`
	InternalDate string `json:"internal_date"`
	MessageID    string `json:"message_id,omitempty"`
	Size         uint64 `json:"size"`
	SHA256       string `json:"sha256"`
	Vaulted      bool   `json:"vaulted,omitempty"`
}

// exportMbox writes the messages an export streams as an mboxrd file
// (lines starting with ">*From " get one more ">") and its manifest. Each
// message's SHA-256 is computed here and must equal the server's.
func exportMbox(ctx context.Context, c adminpb.AdminClient, req *adminpb.ArchiveSearchRequest, out, server string) error {
	stream, err := c.ArchiveExport(ctx, req)
	if err != nil {
		return rpcError(err, server)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	fileSum := sha256.New()
	w := bufio.NewWriter(io.MultiWriter(f, fileSum))
	m := manifest{Query: req.Query, User: req.User, Held: req.IncludeHeld, Server: server, Created: time.Now().UTC().Format(time.RFC3339), Mbox: filepath.Base(out)}
	if req.FromUnix != 0 {
		m.From = time.Unix(req.FromUnix, 0).UTC().Format(time.RFC3339)
	}
	if req.ToUnix != 0 {
		m.To = time.Unix(req.ToUnix, 0).UTC().Format(time.RFC3339)
	}
	var cur *adminpb.ArchiveHit
	var body bytes.Buffer
	flush := func() error {
		if cur == nil {
			return nil
		}
		sum := sha256.Sum256(body.Bytes())
		if got := hex.EncodeToString(sum[:]); got != cur.Sha256 {
			return fmt.Errorf("message %s %s/%d: received bytes hash to %s, the server stored %s", cur.User, cur.Mailbox, cur.Uid, got, cur.Sha256)
		}
		if err := writeMboxMessage(w, cur, body.Bytes()); err != nil {
			return err
		}
		m.Messages = append(m.Messages, manifestMessage{User: cur.User, Mailbox: cur.Mailbox, UID: cur.Uid,
			InternalDate: time.Unix(cur.InternalDateUnix, 0).UTC().Format(time.RFC3339), MessageID: cur.MessageId,
			Size: cur.Size, SHA256: cur.Sha256, Vaulted: cur.Vaulted})
		cur = nil
		body.Reset()
		return nil
	}
	for {
		ch, err := stream.Recv()
		if err != nil {
			return rpcError(fmt.Errorf("export ended early: %w", err), server)
		}
		if ch.Hit != nil {
			if err := flush(); err != nil {
				return err
			}
			cur = ch.Hit
		}
		body.Write(ch.Data)
		if ch.Done {
			m.AuditIndex = ch.AuditIndex
			break
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	m.MboxSHA256 = hex.EncodeToString(fileSum.Sum(nil))
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".manifest.json", append(mb, '\n'), 0o640); err != nil {
		return err
	}
	fmt.Printf("exported %d messages to %s (manifest %s.manifest.json; audit index %d)\n", len(m.Messages), out, out, m.AuditIndex)
	return nil
}

func writeMboxMessage(w *bufio.Writer, h *adminpb.ArchiveHit, data []byte) error {
	from := h.From
	if from == "" || from == "@" {
		from = "MAILER-DAEMON"
	}
	fmt.Fprintf(w, "From %s %s\n", from, time.Unix(h.InternalDateUnix, 0).UTC().Format(time.ANSIC))
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
	_, err := w.WriteString("\n")
	return err
}
