package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/continuum-mail/continuum/node/identity"
)

// runTLS is `continuum tls ca|cert|gossip-key`: the cluster CA, node and
// admin certificates, and the gossip key (node/identity).
func runTLS(args []string) error {
	const usage = "usage: continuum tls ca --dir D | cert (--node ID [--hosts H,...] | --admin NAME) --dir D | gossip-key --dir D"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("tls "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "tls", "directory of the cluster CA and the certificates")
	switch args[0] {
	case "ca":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := identity.CreateCA(*dir); err != nil {
			return err
		}
		c, k := identity.CAFiles(*dir)
		fmt.Printf("cluster CA: %s (key %s: keep it offline once the certificates are issued)\n", c, k)
		return nil
	case "cert":
		node := fs.String("node", "", "issue a node certificate for this node ID")
		admin := fs.String("admin", "", "issue an admin client certificate for this operator name")
		hosts := fs.String("hosts", "", "the node's DNS names and IP addresses, comma-separated (default localhost,127.0.0.1,::1)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var cert, key string
		var err error
		switch {
		case (*node == "") == (*admin == ""):
			return errors.New("give exactly one of --node ID and --admin NAME")
		case *node != "":
			var hs []string
			for _, h := range strings.Split(*hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			cert, key, err = identity.IssueNode(*dir, *node, hs)
		default:
			cert, key, err = identity.IssueAdmin(*dir, *admin)
		}
		if err != nil {
			return err
		}
		fmt.Printf("certificate %s, key %s (valid %v)\n", cert, key, identity.LeafValidity)
		return nil
	case "gossip-key":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		p := identity.GossipKeyFile(*dir)
		if err := identity.WriteGossipKey(p); err != nil {
			return err
		}
		fmt.Printf("gossip key: %s (give every node --cluster-key-file %s)\n", p, p)
		return nil
	}
	return errors.New(usage)
}
