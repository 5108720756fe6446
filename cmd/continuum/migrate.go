package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/continuum-mail/continuum/node/migrate"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

const importUsage = "usage: continuum import USER --format mbox|maildir --in PATH [--mailbox M]\n" +
	"       continuum import USER --from imap://HOST:PORT --login L --password-stdin [--tls|--starttls] [--mailbox M]..."

// runImport copies mail into a user's account: from an mbox file or tree,
// a Maildir++ tree, or a live IMAP server. Run it again after an
// interruption: what is there already is skipped.
func runImport(args []string) error {
	a := newAdminFlags("import")
	format := a.fs.String("format", "", "mbox or maildir (with --in)")
	in := a.fs.String("in", "", "the mbox file or directory, or the Maildir root")
	from := a.fs.String("from", "", "imap://HOST:PORT of a live server to copy from")
	login := a.fs.String("login", "", "the login on the IMAP server")
	pwStdin := a.fs.Bool("password-stdin", false, "read the IMAP password from standard input")
	useTLS := a.fs.Bool("tls", false, "implicit TLS to the IMAP server")
	startTLS := a.fs.Bool("starttls", false, "STARTTLS to the IMAP server")
	insecure := a.fs.Bool("insecure-skip-verify", false, "do not check the IMAP server's certificate (tests only)")
	keepOrder := a.fs.Bool("keep-order", false, "commit one batch at a time so UIDs follow the source's order exactly, across elections too (slower)")
	var mailboxes stringList
	a.fs.Var(&mailboxes, "mailbox", "only this mailbox (repeatable); with a single mbox file: the mailbox to fill (default INBOX)")
	*a.timeout = 30 * 24 * time.Hour // as long as it takes; Ctrl-C stops it
	pos, err := a.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(importUsage)
	}
	user := pos[0]
	var src migrate.Source
	var what string
	switch {
	case *from != "":
		u, err := url.Parse(*from)
		if err != nil || u.Scheme != "imap" || u.Host == "" {
			return fmt.Errorf("--from wants imap://HOST:PORT, not %q", *from)
		}
		if *login == "" {
			return errors.New("--from needs --login")
		}
		pw, err := readPassword(*pwStdin)
		if err != nil {
			return err
		}
		mode := ""
		switch {
		case *useTLS && *startTLS:
			return errors.New("--tls and --starttls exclude each other")
		case *useTLS:
			mode = "tls"
		case *startTLS:
			mode = "starttls"
		}
		host := u.Host
		if u.Port() == "" {
			if mode == "tls" {
				host += ":993"
			} else {
				host += ":143"
			}
		}
		s, err := migrate.NewIMAPSource(migrate.IMAPOptions{Addr: host, Login: *login, Password: pw, TLS: mode,
			TLSConfig: &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: *insecure}, Mailboxes: mailboxes})
		if err != nil {
			return err
		}
		src, what = s, "imap://"+host
	case *in != "":
		switch *format {
		case "mbox":
			into := ""
			if len(mailboxes) > 1 {
				return errors.New("mbox: at most one --mailbox")
			} else if len(mailboxes) == 1 {
				into = mailboxes[0]
			}
			s, err := migrate.NewMboxSource(*in, into)
			if err != nil {
				return err
			}
			src, what = s, "mbox "+*in
		case "maildir":
			s, err := migrate.NewMaildirSource(*in)
			if err != nil {
				return err
			}
			src, what = s, "maildir "+*in
		default:
			return errors.New("--format mbox or --format maildir, with --in PATH")
		}
	default:
		return errors.New(importUsage)
	}
	defer src.Close()

	c, ctx, done, err := a.clientUntilSignal()
	if err != nil {
		return err
	}
	defer done()
	p := migrate.NewProgress(os.Stderr, isTerminal(os.Stderr), "import")
	sum, err := migrate.Import(ctx, c, user, src, migrate.ImportOptions{SourceName: what, KeepOrder: *keepOrder, Progress: p})
	if sum != nil {
		printSummary(os.Stdout, "import", user, sum)
	}
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted; run the same command again to copy the rest (what is there is skipped)")
		}
		return fmt.Errorf("%w (run the same command again to copy the rest)", rpcError(err, *a.server))
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d messages were not copied (see above)", sum.Failed)
	}
	return nil
}

func printSummary(w io.Writer, what, user string, s *migrate.Summary) {
	fmt.Fprintf(w, "%s %s: %d mailboxes, %d copied (%s), %d skipped (already there), %d failed, in %v (%.0f msg/s, %.1f MB/s)\n",
		what, user, s.Mailboxes, s.Copied, humanBytes(s.Bytes), s.Skipped, s.Failed, s.Took.Round(time.Millisecond),
		s.Rate(), float64(s.Bytes)/1e6/max(s.Took.Seconds(), 1e-3))
	if s.Skipped > 0 && what == "import" {
		fmt.Fprintf(w, "resumed: %d messages were in the account already (same Message-ID and digest) and were not copied again\n", s.Skipped)
	}
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  failed: %s %s: %s\n", f.Mailbox, f.SourceID, f.Reason)
	}
	if s.Failed > len(s.Failures) {
		fmt.Fprintf(w, "  … and %d more\n", s.Failed-len(s.Failures))
	}
}

// runExport writes a user's mail to an mbox file or tree, or a Maildir++
// tree.
func runExport(args []string) error {
	a := newAdminFlags("export")
	format := a.fs.String("format", "", "mbox or maildir")
	out := a.fs.String("out", "", "where to write: a directory (mbox: a file when one --mailbox is given and PATH is not a directory)")
	since := a.fs.String("since", "", "only messages with INTERNALDATE on or after DATE (2006-01-02 or RFC 3339)")
	var mailboxes stringList
	a.fs.Var(&mailboxes, "mailbox", "only this mailbox (repeatable)")
	*a.timeout = 30 * 24 * time.Hour // as long as it takes; Ctrl-C stops it
	pos, err := a.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return errors.New("usage: continuum export USER [--mailbox M] [--since DATE] --format mbox|maildir --out PATH")
	}
	var opts migrate.ExportOptions
	opts.Mailboxes = mailboxes
	if *since != "" {
		t, err := time.Parse("2006-01-02", *since)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, *since); err != nil {
				return fmt.Errorf("--since: %q is neither 2006-01-02 nor RFC 3339", *since)
			}
		}
		opts.Since = t
	}
	var sink migrate.Sink
	switch *format {
	case "mbox":
		single := false
		if len(mailboxes) == 1 {
			st, err := os.Stat(*out)
			single = err != nil || !st.IsDir()
		}
		sink, err = migrate.NewMboxSink(*out, single)
	case "maildir":
		sink, err = migrate.NewMaildirSink(*out)
	default:
		return errors.New("--format mbox or --format maildir")
	}
	if err != nil {
		return err
	}
	c, ctx, done, err := a.clientUntilSignal()
	if err != nil {
		return err
	}
	defer done()
	p := migrate.NewProgress(os.Stderr, isTerminal(os.Stderr), "export")
	sum, err := migrate.Export(ctx, c, pos[0], opts, sink, p)
	if sum != nil {
		printSummary(os.Stdout, "export", pos[0], sum)
	}
	if md, ok := sink.(*migrate.MaildirSink); ok && md.DroppedKeywords > 0 {
		fmt.Printf("  %d keywords not written: a Maildir folder names at most 26\n", md.DroppedKeywords)
	}
	return rpcError(err, *a.server)
}

// clientUntilSignal is adminFlags.client for a long copy: its context also
// ends on an interrupt (SIGINT, SIGTERM), so the copy stops cleanly and can
// be resumed.
func (a *adminFlags) clientUntilSignal() (adminpb.AdminClient, context.Context, func(), error) {
	c, actx, done, err := a.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(actx, os.Interrupt, syscall.SIGTERM)
	return c, ctx, func() { stop(); done() }, nil
}
