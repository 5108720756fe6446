package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/continuum-mail/continuum/node/identity"
)

// runTLS is `continuum tls ca|cert|gossip-key`: the cluster CA, node and
// admin certificates, and the gossip key (node/identity).
func runTLS(args []string) error {
	const usage = "usage: continuum tls ca --dir D | cert (--node ID [--hosts H,...] | --admin NAME) --dir D | gossip-key --dir D | init --dir D --nodes ID@HOST[+HOST...],... [--admin NAME] | install --from SRC --dir D"
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
	case "init":
		nodes := fs.String("nodes", "", "the nodes, ID@HOST[+HOST...] comma-separated (each certificate also names localhost and 127.0.0.1)")
		admin := fs.String("admin", "", "also issue an admin certificate for this operator name")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return tlsInit(*dir, *nodes, *admin)
	case "install":
		from := fs.String("from", "", "directory to copy the TLS material from (a mounted Kubernetes Secret)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return tlsInstall(*from, *dir)
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

// tlsInit makes, in one step, whatever of a cluster's TLS material is
// missing from dir: the CA, a certificate per node, an admin certificate
// and the gossip key. It keeps what exists, so an init step that runs
// before every start (deploy/compose) issues nothing twice.
func tlsInit(dir, nodes, admin string) error {
	if nodes == "" {
		return errors.New("tls init: --nodes ID@HOST,... is required")
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if c, _ := identity.CAFiles(dir); !exists(c) {
		if err := identity.CreateCA(dir); err != nil {
			return err
		}
		fmt.Println("cluster CA:", c)
	}
	for _, spec := range strings.Split(nodes, ",") {
		id, hostList, _ := strings.Cut(strings.TrimSpace(spec), "@")
		if id == "" {
			continue
		}
		if c, _ := identity.NodeFiles(dir, id); exists(c) {
			continue
		}
		hosts := []string{id, "localhost", "127.0.0.1"}
		for _, h := range strings.Split(hostList, "+") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		c, _, err := identity.IssueNode(dir, id, hosts)
		if err != nil {
			return err
		}
		fmt.Println("node certificate:", c, hosts)
	}
	if admin != "" {
		if c, _ := identity.AdminFiles(dir, admin); !exists(c) {
			c, _, err := identity.IssueAdmin(dir, admin)
			if err != nil {
				return err
			}
			fmt.Println("admin certificate:", c)
		}
	}
	if p := identity.GossipKeyFile(dir); !exists(p) {
		if err := identity.WriteGossipKey(p); err != nil {
			return err
		}
		fmt.Println("gossip key:", p)
	}
	return nil
}

// tlsInstall copies TLS material from a directory whose modes the node
// would refuse (a Kubernetes Secret volume is group-readable under
// fsGroup) into dir, private keys and the gossip key 0600, certificates
// 0644, owned by the user running it: the StatefulSet's init container.
func tlsInstall(from, dir string) error {
	if from == "" {
		return errors.New("tls install: --from is required")
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() && !strings.HasSuffix(name, ".pem") {
			continue // the Secret volume's ..data links
		}
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "-key.pem") || strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			return err
		}
		n++
	}
	fmt.Printf("installed %d files from %s into %s\n", n, from, dir)
	return nil
}
