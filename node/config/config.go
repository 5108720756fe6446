package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/continuum-mail/continuum/node/identity"
)

// Config is a node's configuration. Zero values are replaced by Defaults.
type Config struct {
	// ID names the node in the Raft configuration; it must never be reused
	// by a node with a different data directory.
	ID string `toml:"id"`
	// Site names the failure domain (a data centre); no site may hold a
	// quorum of voters.
	Site string `toml:"site"`
	// Role is "voter", "nonvoter" (a read replica that forwards writes) or
	// "archive": a permanent non-voter that receives every entry, serves
	// IMAP read-only and answers SMTP/LMTP 421, never counts toward quorum
	// and is never promoted by the leader (node/disaster.go). The archive
	// role is recorded in the data directory at first start.
	Role string `toml:"role"`
	// DataDir holds the state database, the Raft log and snapshots.
	DataDir string `toml:"data"`
	// Hostname is used in the SMTP greeting and Received headers.
	Hostname string `toml:"hostname"`

	// Listen addresses. An empty SMTP, LMTP, IMAP or HTTP address disables
	// that listener; Raft, gRPC and gossip are required.
	SMTPAddr string `toml:"smtp"`
	LMTPAddr string `toml:"lmtp"`
	IMAPAddr string `toml:"imap"`
	HTTPAddr string `toml:"http"`
	GRPCAddr string `toml:"grpc"`
	// AdminAddr is the admin API's own listener (mutual TLS with an admin
	// certificate); loopback by default, so reaching it from elsewhere is
	// a deliberate choice.
	AdminAddr string `toml:"admin"`
	// SMTPSAddr and IMAPSAddr are implicit-TLS listeners (RFC 8314: ports
	// 465 and 993 style); empty: off. They need tls-cert.
	SMTPSAddr  string `toml:"smtps"`
	IMAPSAddr  string `toml:"imaps"`
	RaftAddr   string `toml:"raft"`
	GossipAddr string `toml:"gossip"`

	// Bootstrap makes this node form a new one-node cluster when its data
	// directory is empty. Exactly one node of a new cluster bootstraps.
	Bootstrap bool `toml:"bootstrap"`
	// BootstrapExpect, when positive, forms a new cluster with this many
	// voters at once (like Consul's bootstrap_expect): a node with an empty
	// data directory waits until it sees, through gossip, exactly this many
	// nodes started with the same value, and all of them bootstrap one
	// identical configuration holding every one of them as a voter. A node
	// that finds an existing cluster instead joins it as a non-voter. Give
	// every one of the first N nodes the same N and a Join list; never
	// together with Bootstrap.
	BootstrapExpect int `toml:"bootstrap-expect"`
	// Join lists gossip addresses of existing members to join through.
	Join []string `toml:"join"`

	// ClusterKeyFile holds the gossip key: base64 of 16, 24 or 32 random
	// bytes (AES-128/192/256), the same on every node, in a file nobody but
	// the owner may read (`continuum tls gossip-key` writes one).
	ClusterKeyFile string `toml:"cluster-key-file"`
	// ClusterKey is the gossip key inline: insecure-dev only (a flag shows
	// in ps, a config file is often world-readable). Empty with no file:
	// gossip in the clear, insecure-dev only.
	ClusterKey string `toml:"cluster-key"`

	// ClusterCA, NodeCert and NodeKey are the PEM files of the cluster CA
	// and this node's certificate and key (`continuum tls`): every Raft and
	// peer gRPC connection is mutual TLS 1.3 with them, and the admin API
	// accepts admin certificates from the same CA. Required unless
	// insecure-dev. The certificate is re-read when it changes on disk.
	ClusterCA string `toml:"cluster-ca"`
	NodeCert  string `toml:"node-cert"`
	NodeKey   string `toml:"node-key"`
	// InsecureDev lets a node run without TLS material and without a gossip
	// key: plaintext, unauthenticated Raft, peer and admin traffic. For a
	// throwaway cluster on one machine only.
	InsecureDev bool `toml:"insecure-dev"`

	// RaftProfile picks timeouts: "local" (one machine), "lan" or "wan"
	// (inter-site round trips of 20–150 ms).
	RaftProfile string `toml:"raft-profile"`

	// Dev relaxes security for a cluster on one machine: passwords over
	// plaintext are accepted on loopback connections.
	Dev bool `toml:"dev"`

	// TLSCert and TLSKey, when set, enable STARTTLS on SMTP/LMTP and IMAP
	// and the smtps/imaps listeners; they are re-read when they change.
	TLSCert string `toml:"tls-cert"`
	TLSKey  string `toml:"tls-key"`

	// MaxMessageBytes is the SMTP SIZE limit and the IMAP APPENDLIMIT.
	MaxMessageBytes int64 `toml:"max-message-bytes"`
	// MaxRecipients is the number of RCPT TO accepted per transaction.
	MaxRecipients int `toml:"max-recipients"`
	// MaxConnsPerIP caps concurrent SMTP connections from one address.
	MaxConnsPerIP int `toml:"max-conns-per-ip"`
	// LMTPMaxConnsPerIP caps concurrent LMTP connections from one address;
	// 0 (the default) means no cap: LMTP comes from the operator's own MTAs,
	// which open many sessions from one address.
	LMTPMaxConnsPerIP int `toml:"lmtp-max-conns-per-ip"`
	// LMTPMaxConns caps concurrent LMTP connections in total (1024).
	LMTPMaxConns int `toml:"lmtp-max-conns"`
	// MaxLoginFailures from one client address within 15 minutes, summed
	// over the cluster, make every login from it fail unchecked (0: 10).
	MaxLoginFailures int `toml:"max-login-failures"`
	// LoginFailureDelay is the wait before answering a first failed login;
	// it doubles per further failure up to 16 × (0: 1 s).
	LoginFailureDelay Duration `toml:"login-failure-delay"`
	// MaxConcurrentLogins bounds the password checks in flight on this
	// node, 19 MiB each (0: 8).
	MaxConcurrentLogins int `toml:"max-concurrent-logins"`
	// ProtocolTimeout is the idle read/write timeout of SMTP and LMTP.
	ProtocolTimeout Duration `toml:"protocol-timeout"`
	// ApplyTimeout bounds how long a write waits for commit before the
	// client is told to retry (451 / NO [UNAVAILABLE]).
	ApplyTimeout Duration `toml:"apply-timeout"`
	// LeaderlessAfter is how long without a leader before the node declares
	// itself cut off (SMTP 421, IMAP read-only). 0 = 2 × election timeout.
	LeaderlessAfter Duration `toml:"leaderless-after"`

	// RaftSnapshotThreshold is how many new log entries trigger a snapshot
	// (0: the default, 8192); RaftTrailingLogs how many entries a snapshot
	// leaves in the log for slow followers (0: 10240); RaftSnapshotInterval
	// how often the threshold is checked (0: 2m). Small values force
	// frequent snapshots and InstallSnapshot (fault tests).
	RaftSnapshotThreshold uint64   `toml:"raft-snapshot-threshold"`
	RaftTrailingLogs      uint64   `toml:"raft-trailing-logs"`
	RaftSnapshotInterval  Duration `toml:"raft-snapshot-interval"`

	// AutopilotDeadAfter, when positive, lets the leader remove a voter
	// that gossip has seen dead (and that gRPC cannot reach) for this long,
	// only while at least three voters and a healthy quorum remain. 0 = off:
	// voters are removed only by `continuum cluster remove`.
	AutopilotDeadAfter Duration `toml:"autopilot-dead-after"`

	// ScrubRate bounds how fast the background scrub reads the node's
	// sstables (bytes/s); ScrubInterval is the pause between two passes.
	// Every stored bit is checked within (state size + log size) /
	// ScrubRate + ScrubInterval of being damaged (node/doc.go).
	ScrubRate     int64    `toml:"scrub-rate"`
	ScrubInterval Duration `toml:"scrub-interval"`
	// CheckInterval is how often the leader proposes a replicated
	// consistency check (every replica digests its state at one log index
	// and the odd one out is quarantined); 0 = only on demand (`continuum
	// cluster check`). CheckRate bounds how fast each replica reads its
	// state for the digest (bytes/s).
	CheckInterval Duration `toml:"consistency-check-interval"`
	CheckRate     int64    `toml:"consistency-check-rate"`
	// RetentionInterval is how often the leader proposes a retention run
	// (expiry judged on each message's INTERNALDATE against log time);
	// 0 = only on demand (`continuum retention run`).
	RetentionInterval Duration `toml:"retention-interval"`

	// IndexBulkQuiet is how long an import must have paused before the
	// full-text index takes up the mailboxes it wrote (0: 10s; negative:
	// index imported mail as it arrives); IndexBulkMaxDefer bounds the wait
	// for an import that does not pause (0: 5m). Searches are exact either
	// way (node/search, "Bulk imports wait").
	IndexBulkQuiet    Duration `toml:"index-bulk-quiet"`
	IndexBulkMaxDefer Duration `toml:"index-bulk-max-defer"`

	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log-level"`
}

// Duration is a time.Duration that reads "250ms" from TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return Config{
		Role:            "voter",
		Hostname:        host,
		RaftProfile:     "lan",
		AdminAddr:       "127.0.0.1:7093",
		MaxMessageBytes: 50 << 20,
		MaxRecipients:   100,
		MaxConnsPerIP:   50,
		LMTPMaxConns:    1024,
		ProtocolTimeout: Duration{5 * time.Minute},
		ApplyTimeout:    Duration{10 * time.Second},
		ScrubRate:       32 << 20,
		ScrubInterval:   Duration{6 * time.Hour},
		CheckInterval:   Duration{time.Hour},
		CheckRate:       64 << 20,
		LogLevel:        "info",
		// Hourly: a policy is in days, so an hour late is within its
		// grain, and one run is a scan of message rows, not blobs.
		RetentionInterval: Duration{time.Hour},
	}
}

// Load reads a TOML file over the defaults. Unknown keys are an error, so a
// typo cannot silently leave a default in place.
func Load(path string, c *Config) error {
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return fmt.Errorf("config: %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// RegisterFlags binds every field to a kebab-case flag on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ID, "id", c.ID, "node ID (unique, stable)")
	fs.StringVar(&c.Site, "site", c.Site, "site (failure domain) of this node")
	fs.StringVar(&c.Role, "role", c.Role, "voter, nonvoter or archive (a permanent read-only non-voter)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory")
	fs.StringVar(&c.Hostname, "hostname", c.Hostname, "host name for SMTP greeting and Received headers")
	fs.StringVar(&c.SMTPAddr, "smtp", c.SMTPAddr, "SMTP listen address (empty: off)")
	fs.StringVar(&c.LMTPAddr, "lmtp", c.LMTPAddr, "LMTP listen address (empty: off)")
	fs.StringVar(&c.IMAPAddr, "imap", c.IMAPAddr, "IMAP listen address (empty: off)")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address for health and metrics (empty: off)")
	fs.StringVar(&c.GRPCAddr, "grpc", c.GRPCAddr, "gRPC listen address (peers and admin)")
	fs.StringVar(&c.AdminAddr, "admin", c.AdminAddr, "admin API listen address (mutual TLS, admin certificates)")
	fs.StringVar(&c.SMTPSAddr, "smtps", c.SMTPSAddr, "SMTP implicit-TLS listen address (empty: off)")
	fs.StringVar(&c.IMAPSAddr, "imaps", c.IMAPSAddr, "IMAP implicit-TLS listen address (empty: off)")
	fs.StringVar(&c.RaftAddr, "raft", c.RaftAddr, "Raft listen address")
	fs.StringVar(&c.GossipAddr, "gossip", c.GossipAddr, "gossip (memberlist) listen address")
	fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "form a new cluster if the data directory is empty")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "form a new cluster once this many nodes started with the same value see each other, all of them voters (0: off)")
	fs.Func("join", "gossip addresses of members to join, comma-separated", func(s string) error {
		c.Join = nil
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Join = append(c.Join, a)
			}
		}
		return nil
	})
	fs.StringVar(&c.ClusterKeyFile, "cluster-key-file", c.ClusterKeyFile, "file holding the gossip encryption key (base64 of 16, 24 or 32 bytes; mode 0600)")
	fs.StringVar(&c.ClusterKey, "cluster-key", c.ClusterKey, "INSECURE, --insecure-dev only (visible in ps): the gossip key inline")
	fs.StringVar(&c.ClusterCA, "cluster-ca", c.ClusterCA, "cluster CA certificate (PEM)")
	fs.StringVar(&c.NodeCert, "node-cert", c.NodeCert, "this node's certificate from the cluster CA (PEM)")
	fs.StringVar(&c.NodeKey, "node-key", c.NodeKey, "this node's private key (PEM, mode 0600)")
	fs.BoolVar(&c.InsecureDev, "insecure-dev", c.InsecureDev, "INSECURE: run without TLS material and gossip key (plaintext node-to-node and admin traffic)")
	fs.StringVar(&c.RaftProfile, "raft-profile", c.RaftProfile, "Raft timing: local, lan or wan")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "development mode: plaintext passwords allowed on loopback")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate (PEM) for STARTTLS, smtps and imaps")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS private key (PEM)")
	fs.Int64Var(&c.MaxMessageBytes, "max-message-bytes", c.MaxMessageBytes, "largest message accepted")
	fs.IntVar(&c.MaxRecipients, "max-recipients", c.MaxRecipients, "recipients per SMTP transaction")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "concurrent SMTP connections per client address")
	fs.IntVar(&c.LMTPMaxConnsPerIP, "lmtp-max-conns-per-ip", c.LMTPMaxConnsPerIP, "concurrent LMTP connections per client address (0: no cap)")
	fs.IntVar(&c.LMTPMaxConns, "lmtp-max-conns", c.LMTPMaxConns, "concurrent LMTP connections in total")
	fs.IntVar(&c.MaxLoginFailures, "max-login-failures", c.MaxLoginFailures, "failed logins per client address in 15 minutes, cluster-wide, before it is refused unchecked (0: 10)")
	fs.DurationVar(&c.LoginFailureDelay.Duration, "login-failure-delay", c.LoginFailureDelay.Duration, "delay before answering a first failed login, doubling per failure (0: 1s)")
	fs.IntVar(&c.MaxConcurrentLogins, "max-concurrent-logins", c.MaxConcurrentLogins, "password checks in flight on this node, 19 MiB each (0: 8)")
	fs.DurationVar(&c.ProtocolTimeout.Duration, "protocol-timeout", c.ProtocolTimeout.Duration, "SMTP/LMTP idle timeout")
	fs.DurationVar(&c.ApplyTimeout.Duration, "apply-timeout", c.ApplyTimeout.Duration, "how long a write waits for commit")
	fs.DurationVar(&c.LeaderlessAfter.Duration, "leaderless-after", c.LeaderlessAfter.Duration, "time without a leader before the node is cut off (0: 2 × election timeout)")
	fs.Uint64Var(&c.RaftSnapshotThreshold, "raft-snapshot-threshold", c.RaftSnapshotThreshold, "new log entries that trigger a snapshot (0: 8192)")
	fs.Uint64Var(&c.RaftTrailingLogs, "raft-trailing-logs", c.RaftTrailingLogs, "log entries kept after a snapshot (0: 10240)")
	fs.DurationVar(&c.RaftSnapshotInterval.Duration, "raft-snapshot-interval", c.RaftSnapshotInterval.Duration, "how often to check the snapshot threshold (0: 2m)")
	fs.DurationVar(&c.AutopilotDeadAfter.Duration, "autopilot-dead-after", c.AutopilotDeadAfter.Duration, "remove a voter dead this long, if safe (0: off)")
	fs.Int64Var(&c.ScrubRate, "scrub-rate", c.ScrubRate, "background scrub read rate, bytes/s")
	fs.DurationVar(&c.ScrubInterval.Duration, "scrub-interval", c.ScrubInterval.Duration, "pause between two scrub passes")
	fs.DurationVar(&c.CheckInterval.Duration, "consistency-check-interval", c.CheckInterval.Duration, "how often the leader runs a replicated consistency check (0: on demand only)")
	fs.Int64Var(&c.CheckRate, "consistency-check-rate", c.CheckRate, "consistency digest read rate, bytes/s")
	fs.DurationVar(&c.RetentionInterval.Duration, "retention-interval", c.RetentionInterval.Duration, "how often the leader runs retention (0: on demand only)")
	fs.DurationVar(&c.IndexBulkQuiet.Duration, "index-bulk-quiet", c.IndexBulkQuiet.Duration, "pause of an import before the full-text index takes up its mailboxes (0: 10s; negative: index as it arrives)")
	fs.DurationVar(&c.IndexBulkMaxDefer.Duration, "index-bulk-max-defer", c.IndexBulkMaxDefer.Duration, "longest the full-text index defers an import that does not pause (0: 5m)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the configuration once, at start.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("config: "+format, a...)) }
	if !idPattern.MatchString(c.ID) {
		bad("id %q: want 1-64 letters, digits, '.', '_' or '-'", c.ID)
	}
	if !idPattern.MatchString(c.Site) {
		bad("site %q: want 1-64 letters, digits, '.', '_' or '-'", c.Site)
	}
	if c.Role != "voter" && c.Role != "nonvoter" && c.Role != "archive" {
		bad("role %q: want voter, nonvoter or archive", c.Role)
	}
	if c.DataDir == "" {
		bad("data: a data directory is required")
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	for _, a := range []struct{ name, addr string }{
		{"raft", c.RaftAddr}, {"grpc", c.GRPCAddr}, {"gossip", c.GossipAddr}, {"admin", c.AdminAddr},
	} {
		if a.addr == "" {
			bad("%s: an address is required", a.name)
		}
	}
	for _, a := range []struct{ name, addr string }{
		{"smtp", c.SMTPAddr}, {"lmtp", c.LMTPAddr}, {"imap", c.IMAPAddr}, {"http", c.HTTPAddr},
		{"raft", c.RaftAddr}, {"grpc", c.GRPCAddr}, {"gossip", c.GossipAddr}, {"admin", c.AdminAddr},
		{"smtps", c.SMTPSAddr}, {"imaps", c.IMAPSAddr},
	} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s address %q: %v", a.name, a.addr, err)
		}
	}
	if c.ClusterKey != "" { // the file is read (and its mode checked) at start
		if _, err := decodeGossipKey(c.ClusterKey); err != nil {
			bad("%v", err)
		}
	}
	switch c.RaftProfile {
	case "local", "lan", "wan":
	default:
		bad("raft-profile %q: want local, lan or wan", c.RaftProfile)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key go together")
	}
	if (c.SMTPSAddr != "" || c.IMAPSAddr != "") && c.TLSCert == "" {
		bad("smtps and imaps need tls-cert and tls-key")
	}
	if c.ClusterKey != "" && c.ClusterKeyFile != "" {
		bad("cluster-key and cluster-key-file: give one")
	}
	hasTLS := c.ClusterCA != "" || c.NodeCert != "" || c.NodeKey != ""
	if hasTLS && (c.ClusterCA == "" || c.NodeCert == "" || c.NodeKey == "") {
		bad("cluster-ca, node-cert and node-key go together")
	}
	if !c.InsecureDev {
		if !hasTLS {
			bad("cluster-ca, node-cert and node-key are required (create them with `continuum tls ca|cert`), or run with --insecure-dev")
		}
		if c.ClusterKey != "" {
			bad("cluster-key inline is for --insecure-dev only: put the key in a file readable by its owner only and give cluster-key-file")
		} else if c.ClusterKeyFile == "" {
			bad("cluster-key-file is required (create one with `continuum tls gossip-key`), or run with --insecure-dev")
		}
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<30 {
		bad("max-message-bytes %d: want 1 KiB to 1 GiB", c.MaxMessageBytes)
	}
	if c.MaxRecipients < 1 || c.MaxRecipients > 10000 {
		bad("max-recipients %d: want 1 to 10000", c.MaxRecipients)
	}
	if c.MaxConnsPerIP < 1 {
		bad("max-conns-per-ip %d: want at least 1", c.MaxConnsPerIP)
	}
	if c.LMTPMaxConnsPerIP < 0 {
		bad("lmtp-max-conns-per-ip %d: want 0 (no cap) or more", c.LMTPMaxConnsPerIP)
	}
	if c.MaxLoginFailures < 0 || c.MaxConcurrentLogins < 0 || c.LoginFailureDelay.Duration < 0 {
		bad("max-login-failures, max-concurrent-logins and login-failure-delay: want 0 (default) or more")
	}
	if c.LMTPMaxConns < 1 {
		bad("lmtp-max-conns %d: want at least 1", c.LMTPMaxConns)
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 9 {
		bad("bootstrap-expect %d: want 0 (off) or 1 to 9", c.BootstrapExpect)
	}
	if c.BootstrapExpect > 0 && c.Bootstrap {
		bad("bootstrap and bootstrap-expect exclude each other")
	}
	if c.BootstrapExpect > 0 && c.Role != "voter" {
		bad("bootstrap-expect needs role voter")
	}
	if c.Bootstrap && c.Role == "archive" {
		bad("bootstrap: an archive replica never starts a cluster alone; start a voter and join the archive to it")
	}
	if c.ProtocolTimeout.Duration <= 0 || c.ApplyTimeout.Duration <= 0 {
		bad("protocol-timeout and apply-timeout must be positive")
	}
	if c.RaftSnapshotInterval.Duration < 0 {
		bad("raft-snapshot-interval %v: want 0 (default) or positive", c.RaftSnapshotInterval.Duration)
	}
	if c.IndexBulkMaxDefer.Duration < 0 {
		bad("index-bulk-max-defer %v: want 0 (default) or a positive duration", c.IndexBulkMaxDefer.Duration)
	}
	if c.AutopilotDeadAfter.Duration < 0 {
		bad("autopilot-dead-after %v: want 0 (off) or a positive duration", c.AutopilotDeadAfter.Duration)
	}
	if c.ScrubRate < 1<<20 || c.CheckRate < 1<<20 {
		bad("scrub-rate %d and consistency-check-rate %d: want at least 1 MiB/s each", c.ScrubRate, c.CheckRate)
	}
	if c.ScrubInterval.Duration < time.Second {
		bad("scrub-interval %v: want at least 1s", c.ScrubInterval.Duration)
	}
	if c.RetentionInterval.Duration < 0 {
		bad("retention-interval %v: want 0 (on demand only) or positive", c.RetentionInterval.Duration)
	}
	if c.CheckInterval.Duration < 0 {
		bad("consistency-check-interval %v: want 0 (on demand only) or positive", c.CheckInterval.Duration)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// Secure reports whether the node runs with TLS material: mTLS between
// nodes and an authenticated admin API.
func (c *Config) Secure() bool { return c.ClusterCA != "" }

// GossipKey decodes the gossip key from ClusterKeyFile or ClusterKey; nil
// when neither is set.
func (c *Config) GossipKey() ([]byte, error) {
	text := c.ClusterKey
	if c.ClusterKeyFile != "" {
		b, err := identity.ReadSecret(c.ClusterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster-key-file: %w", err)
		}
		text = string(b)
	}
	if text == "" {
		return nil, nil
	}
	return decodeGossipKey(text)
}

func decodeGossipKey(text string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("cluster-key: not base64: %v", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("cluster-key: %d bytes, want 16, 24 or 32", len(k))
}
