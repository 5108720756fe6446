package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

type command struct {
	name, usage, help string
	run               func(args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"serve", "serve --config FILE | flags", "run one cluster node", runServe},
		{"dev", "dev [--dir D] [--nodes 3] [--base-port P]", "run a local cluster, one process per node", runDev},
		{"cluster", "cluster status [--json] | transfer-leader [--to NODE] | remove NODE | keys list|install|use|remove [KEYFILE]", "cluster status and membership", runCluster},
		{"domain", "domain add NAME [--catch-all LOCAL] | list", "manage local domains", runDomain},
		{"user", "user add EMAIL --password-stdin | list | passwd EMAIL --password-stdin | del EMAIL", "manage users", runUser},
		{"alias", "alias set EMAIL TARGET...", "point an address at users", runAlias},
		{"health", "health [--http ADDR] [--live]", "probe a node's /readyz (or /healthz): exit 0 when it answers 200 (container health checks)", runHealth},
		{"tls", "tls ca --dir D | cert (--node ID [--hosts H,...] | --admin NAME) --dir D | gossip-key --dir D | init --dir D --nodes ID@HOST,... [--admin NAME] | install --from SRC --dir D", "the cluster CA, node and admin certificates, the gossip key", runTLS},
		{"retention", "retention set (--domain D | --user U) --days N | list [--json] | run", "retention policies and expiry", runRetention},
		{"hold", "hold place (--domain D | --user U) --reason TEXT | release (--domain D | --user U) | list [--json]", "legal holds", runHold},
		{"archive", "archive verify [--all | --data DIR] | restore --user U [--mailbox M --uid N] | search --query Q [--user U] [--from DATE --to DATE] [--include-held] [--json] | export --query Q --format mbox --out PATH", "the tamper-evident journal and eDiscovery", runArchive},
		{"audit", "audit list [--json] [--limit N]", "who did what to the archive and the accounts", runAudit},
		{"backup", "backup --out FILE [--server ADDR] [--allow-stale]", "stream a consistent snapshot of the state from any node", runBackup},
		{"node", "node rebuild --data DIR [--discard] | promote --data DIR", "move a stopped, damaged or quarantined node's state aside so it rebuilds from the others; lift an archive replica's role", runNode},
		{"recover", "recover --data DIR [--id ID] [--yes]", "after losing the majority for good: make a stopped survivor the one voter of a new cluster", runRecover},
		{"import", "import USER --format mbox|maildir --in PATH | --from imap://HOST:PORT --login L --password-stdin [--tls|--starttls] [--mailbox M]", "copy mail into a user's account (resumable: what is there is skipped)", runImport},
		{"export", "export USER [--mailbox M] [--since DATE] --format mbox|maildir --out PATH", "write a user's mail to mbox or Maildir", runExport},
		{"reindex", "reindex [--server ADDR] [--wait D]", "rebuild one live node's full-text index from its state (searches scan meanwhile)", runReindex},
		{"bench", "bench smtp|lmtp|imap --server ADDR [--sessions N] [--duration D] [--size S] [--body random|text|corpus DIR] [--users N] [--json] | compare", "load any SMTP/LMTP/IMAP server; compare: side by side with Dovecot (make bench-compare)", runBench},
		{"restore", "restore --from FILE --data DIR --id ID --raft ADDR", "seed a new node's data directory from a backup (then serve it, others join)", runRestore},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: continuum COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n             %s\n", c.name, c.help, c.usage)
	}
	fmt.Fprintln(os.Stderr, "\nAdmin commands take --server HOST:PORT (a node's admin address) and an admin certificate (--ca/--cert/--key or CONTINUUM_CA/CONTINUUM_CERT/CONTINUUM_KEY); the defaults come from $CONTINUUM_SERVER, else the dev cluster in ./.dev.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return
				}
				fmt.Fprintln(os.Stderr, "continuum "+c.name+":", err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "continuum: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}
