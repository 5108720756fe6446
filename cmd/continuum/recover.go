package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/continuum-mail/continuum/node"
)

// runRecover: `continuum recover` on a stopped surviving voter or archive
// replica after the majority of the voters is lost for good
// (node/recover.go, docs/notes/disaster.md).
func runRecover(args []string) error {
	return recoverCmd(args, os.Stdin, os.Stdout)
}

func recoverCmd(args []string, in io.Reader, out io.Writer) error {
	const usage = "usage: continuum recover --data DIR [--id ID] [--yes] [--keep-uidvalidity]"
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	data := fs.String("data", "", "the stopped node's data directory")
	id := fs.String("id", "", "the node's ID (default: the one the data directory records)")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	keepUV := fs.Bool("keep-uidvalidity", false, "keep every mailbox's UIDVALIDITY (only when no mail client can have seen what the lost majority committed)")
	timeout := fs.Duration("peer-timeout", 2*time.Second, "how long to try each other member's raft address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || fs.NArg() > 0 {
		return errors.New(usage)
	}
	plan, err := node.PlanRecover(*data, *id, nil)
	if err != nil {
		return err
	}
	role := "non-voter"
	if plan.SelfVoter() {
		role = "voter"
	}
	if plan.Identity.Role == "archive" {
		role = "archive replica"
	}
	fmt.Fprintf(out, "node %s (%s, raft %s), cluster %q\n", plan.ID, role, plan.RaftAddr, plan.Identity.Cluster)
	fmt.Fprintf(out, "configuration: %d members, other voters %v\n", len(plan.Raft.Servers), plan.Voters)
	at := "unknown"
	if !plan.AppliedTime.IsZero() {
		at = plan.AppliedTime.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(out, "applied: index %d, term %d, log time %s (kept)\n", plan.AppliedIndex, plan.AppliedTerm, at)
	if plan.Raft.LastIndex > plan.AppliedIndex {
		fmt.Fprintf(out, "log: %d entries beyond what it applied, up to index %d term %d: the recovery commits them\n",
			plan.Raft.LastIndex-plan.AppliedIndex, plan.Raft.LastIndex, plan.Raft.LastTerm)
	}
	if ahead, ok := plan.Ahead(); ok {
		p := plan.Progress
		if ahead > 0 {
			fmt.Fprintf(out, "lost majority: its leader %s had committed index %d at %s, %d entries beyond what this node holds: those writes are lost, and whatever it committed after that time\n",
				p.Leader, p.LeaderCommit, p.At.UTC().Format(time.RFC3339), ahead)
		} else {
			fmt.Fprintf(out, "lost majority: its leader %s had committed index %d at %s, all of which this node holds; what it committed after that time is unknown and lost\n",
				p.Leader, p.LeaderCommit, p.At.UTC().Format(time.RFC3339))
		}
	} else {
		fmt.Fprintln(out, "lost majority: this node has no record of the leader's commit index; it cannot tell how far ahead it was")
	}
	if err := plan.CheckPeers(context.Background(), *timeout); err != nil {
		return err
	}
	if len(plan.Reachable) > 0 {
		fmt.Fprintf(out, "WARNING: these members still answer at their raft address: %v\n", plan.Reachable)
	}
	fmt.Fprintf(out, "no quorum of voters answers. Recovering makes %s the only voter of a new cluster; every other member must be wiped before it joins again.\n", plan.ID)
	if !*yes {
		fmt.Fprint(out, "type RECOVER to go on: ")
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != "RECOVER" {
			return errors.New("not confirmed; nothing changed")
		}
	}
	ident, err := plan.Recover(nil, *keepUV)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "recovered: %s is the one voter of cluster %s (supersedes %q)\n", plan.ID, ident.Cluster, ident.Recovery.Previous)
	if !*keepUV {
		fmt.Fprintln(out, "every mailbox has a new UIDVALIDITY: mail clients resynchronise (UIDs the lost majority handed out may be reused)")
	}
	fmt.Fprintln(out, "start it again with its usual command line: it elects itself and takes mail; new nodes join it as usual; the recovery goes into the audit log and journal once it leads")
	return nil
}

// nodePromote: `continuum node promote --data DIR` lets a stopped archive
// replica become a voter (or nonvoter): the operator's explicit decision.
func nodePromote(args []string) error {
	fs := flag.NewFlagSet("node promote", flag.ContinueOnError)
	data := fs.String("data", "", "the stopped archive replica's data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || fs.NArg() > 0 {
		return errors.New("usage: continuum node promote --data DIR")
	}
	id, err := node.ReadIdentity(*data)
	if err != nil {
		return err
	}
	if id.Role != "archive" {
		return fmt.Errorf("%s is not an archive replica's data directory (role %q)", *data, id.Role)
	}
	id.Role = ""
	if err := node.WriteIdentity(*data, id); err != nil {
		return err
	}
	fmt.Println("the archive role is lifted: start the node with --role voter (the leader promotes it once it has caught up) or --role nonvoter")
	return nil
}
