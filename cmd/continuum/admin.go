package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// devClusterFile is the dev cluster's description in ./.dev, if any.
func devClusterFile() (devCluster, bool) {
	var c devCluster
	b, err := os.ReadFile(".dev/cluster.json")
	if err != nil || json.Unmarshal(b, &c) != nil || len(c.Nodes) == 0 {
		return devCluster{}, false
	}
	return c, true
}

// defaultServer is $CONTINUUM_SERVER, else the first node of a dev cluster
// in ./.dev, else the default admin address.
func defaultServer() string {
	if s := os.Getenv("CONTINUUM_SERVER"); s != "" {
		return s
	}
	if c, ok := devClusterFile(); ok {
		if c.Nodes[0].Admin != "" {
			return c.Nodes[0].Admin
		}
		return c.Nodes[0].GRPC
	}
	return "127.0.0.1:7093"
}

// adminCreds are the files of an admin client certificate.
type adminCreds struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// defaultCreds are $CONTINUUM_CA, $CONTINUUM_CERT and $CONTINUUM_KEY, else
// the dev cluster's admin credentials.
func defaultCreds() adminCreds {
	env := adminCreds{CA: os.Getenv("CONTINUUM_CA"), Cert: os.Getenv("CONTINUUM_CERT"), Key: os.Getenv("CONTINUUM_KEY")}
	if env != (adminCreds{}) {
		return env
	}
	if c, ok := devClusterFile(); ok && c.Admin != nil {
		return *c.Admin
	}
	return adminCreds{}
}

// dialAdmin connects to a node's admin listener with an admin certificate;
// with no credentials at all, in plaintext (a cluster run with
// --insecure-dev).
func dialAdmin(server string, creds adminCreds) (*grpc.ClientConn, error) {
	if creds == (adminCreds{}) {
		return grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if creds.CA == "" || creds.Cert == "" || creds.Key == "" {
		return nil, errors.New("admin credentials: give --ca, --cert and --key together (or CONTINUUM_CA, CONTINUUM_CERT, CONTINUUM_KEY)")
	}
	m, err := identity.Load(creds.CA, creds.Cert, creds.Key)
	if err != nil {
		return nil, fmt.Errorf("admin credentials: %w", err)
	}
	return grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(m.ClientConfig(nil))))
}

// adminFlags parses the flags every admin subcommand shares.
type adminFlags struct {
	fs      *flag.FlagSet
	server  *string
	timeout *time.Duration
	creds   adminCreds
}

func newAdminFlags(name string) *adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	a := &adminFlags{
		fs:      fs,
		server:  fs.String("server", defaultServer(), "a node's admin address"),
		timeout: fs.Duration("timeout", 15*time.Second, "how long to wait for an answer"),
	}
	d := defaultCreds()
	fs.StringVar(&a.creds.CA, "ca", d.CA, "cluster CA certificate (default $CONTINUUM_CA, or the dev cluster's)")
	fs.StringVar(&a.creds.Cert, "cert", d.Cert, "admin client certificate (default $CONTINUUM_CERT, or the dev cluster's)")
	fs.StringVar(&a.creds.Key, "key", d.Key, "admin client key (default $CONTINUUM_KEY, or the dev cluster's)")
	return a
}

// parse accepts flags before and after positional arguments.
func (a *adminFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := a.fs.Parse(args); err != nil {
			return nil, err
		}
		if a.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, a.fs.Arg(0))
		args = a.fs.Args()[1:]
	}
}

func (a *adminFlags) client() (adminpb.AdminClient, context.Context, func(), error) {
	conn, err := dialAdmin(*a.server, a.creds)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *a.timeout)
	return adminpb.NewAdminClient(conn), ctx, func() { cancel(); conn.Close() }, nil
}

// call is what every admin subcommand does once its flags are parsed:
// connect to --server with the admin credentials, make one RPC bounded by
// --timeout, close, and explain an error for the operator (rpcError).
// rpc is the method, as adminpb.AdminClient.DomainAdd.
func call[Req, Res any](a *adminFlags, rpc func(adminpb.AdminClient, context.Context, Req, ...grpc.CallOption) (Res, error), req Req) (Res, error) {
	var res Res
	err := a.run(func(ctx context.Context, c adminpb.AdminClient) error {
		var err error
		res, err = rpc(c, ctx, req)
		return err
	})
	return res, err
}

// run is call for a subcommand that makes several calls or reads a
// stream: do gets the client and the --timeout context; the connection is
// closed when do returns, and an RPC error do returns is explained.
func (a *adminFlags) run(do func(ctx context.Context, c adminpb.AdminClient) error) error {
	c, ctx, done, err := a.client()
	if err != nil {
		return err
	}
	defer done()
	return rpcError(do(ctx, c), *a.server)
}

// rpcError turns a gRPC status into a plain message for the operator.
func rpcError(err error, server string) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		hint := ""
		if st.Code() == codes.Unavailable {
			hint = "; is it a node's admin address (not its peer gRPC port), and are the admin credentials right (--ca/--cert/--key, CONTINUUM_CA/CONTINUUM_CERT/CONTINUUM_KEY, or .dev/cluster.json)?"
		}
		return fmt.Errorf("%s (%s, server %s)%s", st.Message(), st.Code(), server, hint)
	}
	return err
}

func readPassword(fromStdin bool) (string, error) {
	if !fromStdin {
		return "", errors.New("give the password on standard input with --password-stdin")
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}

func runCluster(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: continuum cluster status [--json] | check [--json] | transfer-leader [--to NODE] | remove NODE | keys list | keys install|use|remove KEYFILE")
	}
	a := newAdminFlags("cluster " + args[0])
	switch args[0] {
	case "status":
		asJSON := a.fs.Bool("json", false, "print JSON")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		st, err := call(a, adminpb.AdminClient.ClusterStatus, &adminpb.ClusterStatusRequest{})
		if err != nil {
			return err
		}
		if *asJSON {
			return printStatusJSON(st)
		}
		printStatus(st)
		return nil
	case "check":
		asJSON := a.fs.Bool("json", false, "print JSON")
		a.fs.Lookup("timeout").DefValue = "5m0s"
		*a.timeout = 5 * time.Minute
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.Check, &adminpb.CheckRequest{TimeoutMs: a.timeout.Milliseconds() - 2000})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(checkJSON(res)); err != nil {
				return err
			}
		} else {
			fmt.Printf("consistency check %d at log index %d (%v)\n\n", res.Id, res.Index, time.Duration(res.TookMs)*time.Millisecond)
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tDIGEST\tVERDICT")
			for _, n := range res.Nodes {
				d := n.Digest
				if d == "" {
					d = "-"
				} else if len(d) > 16 {
					d = d[:16]
				}
				v := n.Verdict
				if n.Error != "" {
					v += " (" + n.Error + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Id, d, v)
			}
			tw.Flush()
			if res.Consistent {
				fmt.Println("\nall replicas are equal")
			} else {
				fmt.Println("\nNOT CONSISTENT: the replicas did not all answer with the same digest")
			}
		}
		if !res.Consistent {
			return errors.New("the replicas are not all equal (see above)")
		}
		return nil
	case "transfer-leader":
		to := a.fs.String("to", "", "the voter to hand leadership to (default: the most up-to-date one)")
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.TransferLeader, &adminpb.TransferLeaderRequest{To: *to})
		if err != nil {
			return err
		}
		fmt.Println("leader is now", res.Leader)
		return nil
	case "remove":
		pos, err := a.parse(args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: continuum cluster remove NODE")
		}
		if _, err := call(a, adminpb.AdminClient.RemoveNode, &adminpb.RemoveNodeRequest{Id: pos[0]}); err != nil {
			return err
		}
		fmt.Println("removed", pos[0], "from the raft configuration")
		return nil
	case "keys":
		return runClusterKeys(a, args[1:])
	default:
		return fmt.Errorf("unknown cluster subcommand %q", args[0])
	}
}

// runClusterKeys is `continuum cluster keys`: the gossip keyring on every
// node. A key is read from a file (continuum tls gossip-key writes one;
// mode 0600), never from the command line.
func runClusterKeys(a *adminFlags, args []string) error {
	const usage = "usage: continuum cluster keys list | install KEYFILE | use KEYFILE | remove KEYFILE"
	if len(args) == 0 {
		return errors.New(usage)
	}
	op := args[0]
	if op == "add" { // the name for install
		op = "install"
	}
	pos, err := a.parse(args[1:])
	if err != nil {
		return err
	}
	req := &adminpb.GossipKeysRequest{Op: op}
	switch {
	case op == "list" && len(pos) == 0:
	case (op == "install" || op == "use" || op == "remove") && len(pos) == 1:
		b, err := identity.ReadSecret(pos[0])
		if err != nil {
			return fmt.Errorf("key file: %w", err)
		}
		req.Key = strings.TrimSpace(string(b))
	default:
		return errors.New(usage)
	}
	res, err := call(a, adminpb.AdminClient.GossipKeys, req)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPRIMARY\tKEYS")
	failed := 0
	for _, n := range res.Nodes {
		if n.Error != "" {
			failed++
			fmt.Fprintf(tw, "%s\t-\terror: %s\n", n.Id, n.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Id, n.Primary, strings.Join(n.Keys, ","))
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("keys %s failed on %d of %d nodes (repeat it once they answer)", op, failed, len(res.Nodes))
	}
	return nil
}

// statusJSON is the --json shape of docs/ARCHITECTURE.md §8.
type statusJSON struct {
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	// FaultTolerance is how many voters may fail now without stopping
	// writes (admin.FaultTolerance).
	FaultTolerance int              `json:"fault_tolerance"`
	Nodes          []nodeStatusJSON `json:"nodes"`
	Warnings       []string         `json:"warnings,omitempty"`
}

type nodeStatusJSON struct {
	ID            string `json:"id"`
	Site          string `json:"site"`
	Role          string `json:"role"`
	State         string `json:"state"`
	Healthy       bool   `json:"healthy"`
	AppliedIndex  uint64 `json:"applied_index"`
	CommitIndex   uint64 `json:"commit_index"`
	LastContactMs int64  `json:"last_contact_ms"`
	Gossip        string `json:"gossip,omitempty"`
	Quarantine    string `json:"quarantine,omitempty"`
	CheckIndex    uint64 `json:"check_index,omitempty"`
	CheckDigest   string `json:"check_digest,omitempty"`
	CheckVerdict  string `json:"check_verdict,omitempty"`
	ScrubDone     string `json:"scrub_done,omitempty"`
	ScrubError    string `json:"scrub_error,omitempty"`
}

func checkJSON(res *adminpb.CheckResponse) any {
	type node struct {
		ID      string `json:"id"`
		Digest  string `json:"digest"`
		Verdict string `json:"verdict"`
		Error   string `json:"error,omitempty"`
	}
	out := struct {
		Index      uint64 `json:"index"`
		ID         uint64 `json:"id"`
		Consistent bool   `json:"consistent"`
		TookMs     int64  `json:"took_ms"`
		Nodes      []node `json:"nodes"`
	}{Index: res.Index, ID: res.Id, Consistent: res.Consistent, TookMs: res.TookMs, Nodes: []node{}}
	for _, n := range res.Nodes {
		out.Nodes = append(out.Nodes, node{n.Id, n.Digest, n.Verdict, n.Error})
	}
	return out
}

func unixMs(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func printStatusJSON(st *adminpb.ClusterStatusResponse) error {
	out := statusJSON{Leader: st.Leader, Term: st.Term, FaultTolerance: admin.FaultTolerance(st), Warnings: st.Warnings, Nodes: []nodeStatusJSON{}}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, nodeStatusJSON{ID: n.Id, Site: n.Site, Role: n.Role, State: n.State, Healthy: n.Healthy,
			AppliedIndex: n.AppliedIndex, CommitIndex: n.CommitIndex, LastContactMs: n.LastContactMs, Gossip: n.Gossip,
			Quarantine: n.Quarantine, CheckIndex: n.CheckIndex, CheckDigest: n.CheckDigest, CheckVerdict: n.CheckVerdict,
			ScrubDone: unixMs(n.ScrubDoneUnixMs), ScrubError: n.ScrubError})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// faultToleranceLine says in words how many voter failures the cluster
// survives now, plainly when the answer is none.
func faultToleranceLine(ft int) string {
	switch ft {
	case 0:
		return "fault tolerance: 0 -- NOT fault tolerant: losing one more voter stops writes"
	case 1:
		return "fault tolerance: 1 (the cluster survives the loss of 1 voter)"
	}
	return fmt.Sprintf("fault tolerance: %d (the cluster survives the loss of %d voters)", ft, ft)
}

func printStatus(st *adminpb.ClusterStatusResponse) {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Printf("leader: %s  term: %d\n", leader, st.Term)
	fmt.Println(faultToleranceLine(admin.FaultTolerance(st)))
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSITE\tROLE\tSTATE\tHEALTHY\tAPPLIED\tCOMMIT\tLAG\tLAST CONTACT\tLAST CHECK")
	var leaderCommit uint64
	for _, n := range st.Nodes {
		if n.State == "leader" {
			leaderCommit = n.CommitIndex
		}
	}
	for _, n := range st.Nodes {
		lag := "-"
		if leaderCommit > 0 && n.State != "unreachable" {
			lag = fmt.Sprint(int64(leaderCommit) - int64(n.AppliedIndex))
		}
		contact := "-"
		if n.LastContactMs >= 0 {
			contact = (time.Duration(n.LastContactMs) * time.Millisecond).String()
		}
		if n.State == "unreachable" && n.Gossip != "" {
			contact += " (gossip: " + n.Gossip + ")"
		}
		check := "-"
		if n.CheckIndex > 0 {
			check = fmt.Sprintf("@%d %s", n.CheckIndex, n.CheckVerdict)
		}
		if n.Quarantine != "" {
			check = "QUARANTINED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%d\t%s\t%s\t%s\n", n.Id, n.Site, n.Role, n.State, n.Healthy, n.AppliedIndex, n.CommitIndex, lag, contact, check)
	}
	tw.Flush()
	for _, w := range st.Warnings {
		fmt.Println("warning:", w)
	}
}

func runDomain(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: continuum domain add NAME | list")
	}
	a := newAdminFlags("domain " + args[0])
	switch args[0] {
	case "add":
		catchAll := a.fs.String("catch-all", "", "local part that receives mail for unknown addresses")
		pos, err := a.parse(args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: continuum domain add NAME")
		}
		if _, err := call(a, adminpb.AdminClient.DomainAdd, &adminpb.DomainAddRequest{Name: pos[0], CatchAll: *catchAll}); err != nil {
			return err
		}
		fmt.Println("added domain", strings.ToLower(pos[0]))
		return nil
	case "list":
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.DomainList, &adminpb.DomainListRequest{})
		if err != nil {
			return err
		}
		for _, n := range res.Names {
			fmt.Println(n)
		}
		return nil
	default:
		return fmt.Errorf("unknown domain subcommand %q", args[0])
	}
}

func runUser(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: continuum user add|list|passwd|del")
	}
	a := newAdminFlags("user " + args[0])
	switch args[0] {
	case "add", "passwd":
		stdin := a.fs.Bool("password-stdin", false, "read the password from standard input")
		quota := a.fs.Uint64("quota", 0, "quota in bytes (add only; 0: unlimited)")
		pos, err := a.parse(args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: continuum user %s EMAIL --password-stdin", args[0])
		}
		pw, err := readPassword(*stdin)
		if err != nil {
			return err
		}
		if args[0] == "add" {
			res, err := call(a, adminpb.AdminClient.UserAdd, &adminpb.UserAddRequest{Email: pos[0], Password: pw, QuotaBytes: *quota})
			if err != nil {
				return err
			}
			fmt.Printf("added user %s (id %d)\n", strings.ToLower(pos[0]), res.Id)
			return nil
		}
		if _, err := call(a, adminpb.AdminClient.UserPasswd, &adminpb.UserPasswdRequest{Email: pos[0], Password: pw}); err != nil {
			return err
		}
		fmt.Println("password changed for", strings.ToLower(pos[0]))
		return nil
	case "list":
		if _, err := a.parse(args[1:]); err != nil {
			return err
		}
		res, err := call(a, adminpb.AdminClient.UserList, &adminpb.UserListRequest{})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tUSED\tQUOTA")
		for _, u := range res.Users {
			q := "unlimited"
			if u.QuotaBytes > 0 {
				q = fmt.Sprint(u.QuotaBytes)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", u.Id, u.Email, u.UsedBytes, q)
		}
		return tw.Flush()
	case "del":
		pos, err := a.parse(args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("usage: continuum user del EMAIL")
		}
		if _, err := call(a, adminpb.AdminClient.UserDel, &adminpb.UserDelRequest{Email: pos[0]}); err != nil {
			return err
		}
		fmt.Println("deleted user", strings.ToLower(pos[0]))
		return nil
	default:
		return fmt.Errorf("unknown user subcommand %q", args[0])
	}
}

func runAlias(args []string) error {
	if len(args) == 0 || args[0] != "set" {
		return errors.New("usage: continuum alias set EMAIL TARGET...")
	}
	a := newAdminFlags("alias set")
	pos, err := a.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return errors.New("usage: continuum alias set EMAIL TARGET...")
	}
	if _, err := call(a, adminpb.AdminClient.AliasSet, &adminpb.AliasSetRequest{Email: pos[0], Targets: pos[1:]}); err != nil {
		return err
	}
	fmt.Println("alias set:", pos[0], "→", strings.Join(pos[1:], ", "))
	return nil
}
