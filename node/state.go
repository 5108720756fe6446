package node

import (
	"fmt"
	"path/filepath"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// openState opens the state database, the full-text index and the state
// machine over them. The FSM starts applying before the mail service
// exists; the feed pointer is published once it does.
func (n *Node) openState(opts Options) error {
	var err error
	if err := readQuarantine(n.cfg.DataDir); err != nil {
		return err
	}
	n.db, err = storage.Open(filepath.Join(n.cfg.DataDir, "state"), storage.Options{
		Logger: n.log, NoSync: opts.NoSync,
		OnCorruption: func(err error) { go n.quarantine(err) },
	})
	if err != nil {
		return fmt.Errorf("node: state database: %w; run `continuum node rebuild --data %s` and start the node again to rebuild it from the others", err, n.cfg.DataDir)
	}
	// The full-text index is derived data, kept beside the state and never
	// replicated: it follows this node's applies and catches up with the
	// state at start (node/search).
	n.index, err = search.Open(filepath.Join(n.cfg.DataDir, "index"), n.db, search.Options{
		Logger:       n.log,
		BulkQuiet:    n.cfg.IndexBulkQuiet.Duration,
		BulkMaxDefer: n.cfg.IndexBulkMaxDefer.Duration,
	})
	if err != nil {
		return fmt.Errorf("node: search index: %w", err)
	}
	n.fsm, err = raftfsm.New(n.db, raftfsm.Options{
		Logger: n.log,
		OnApply: func(index uint64, events []raftfsm.Event) {
			if f := n.feed.Load(); f != nil {
				f.Publish(index, events)
			}
			n.index.Notify(index, indexEvents(events))
		},
		OnFatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		},
		OnCheck:   n.onCheck,
		NoJournal: opts.NoJournal,
	})
	if err != nil {
		return fmt.Errorf("node: state machine: %w", err)
	}
	return nil
}

// startRaft loads the TLS material, opens Raft (node/consensus) and starts
// gossip (node/membership). Neither joins anything yet: node/cluster does.
func (n *Node) startRaft(opts Options) error {
	var err error
	if n.cfg.Secure() {
		if n.identity, err = loadIdentity(n.cfg); err != nil {
			return err
		}
	} else {
		n.log.Warn("INSECURE: no TLS material (insecure-dev): Raft, peer and admin traffic is plaintext and unauthenticated")
	}

	n.raft, err = consensus.Open(consensus.Config{
		ID:                n.cfg.ID,
		RaftAddr:          n.cfg.RaftAddr,
		Dir:               n.cfg.DataDir,
		Profile:           n.cfg.RaftProfile,
		Bootstrap:         n.cfg.Bootstrap,
		Voter:             n.cfg.Role == "voter",
		FSM:               n.fsm,
		Logger:            n.log,
		Identity:          n.identity,
		Dial:              opts.RaftDial,
		WrapListener:      opts.RaftWrapListener,
		WrapLogStore:      opts.RaftWrapLogStore,
		SnapshotThreshold: firstNonZero(opts.SnapshotThreshold, n.cfg.RaftSnapshotThreshold),
		TrailingLogs:      firstNonZero(opts.TrailingLogs, n.cfg.RaftTrailingLogs),
		SnapshotInterval:  n.cfg.RaftSnapshotInterval.Duration,
		NoSync:            opts.NoSync,
		OnLogCorruption:   func(err error) { go n.quarantine(err) },
	})
	if err != nil {
		return err
	}

	key, err := n.cfg.GossipKey()
	if err != nil {
		return err
	}
	delay := n.cfg.LoginFailureDelay.Duration
	n.logins = loginguard.New(loginguard.Config{
		Self: n.cfg.ID, Max: n.cfg.MaxLoginFailures, Slots: n.cfg.MaxConcurrentLogins,
		Delay: delay, MaxDelay: 16 * delay,
		// Set before any login can run: the pool is started just below,
		// the IMAP listener later.
		Send: func(msg []byte) { n.pool.Send(msg) },
	})
	n.pool, err = membership.Start(membership.Config{
		Key:         key,
		KeyringFile: filepath.Join(n.cfg.DataDir, "gossip-keyring"),
		PeersFile:   filepath.Join(n.cfg.DataDir, "gossip-peers"),
		OnMessage:   n.logins.Receive,
		Meta:        n.memberMeta(), // disaster.go: with the cluster identity
		GossipAddr:  n.cfg.GossipAddr,
		Profile:     n.cfg.RaftProfile,
		Logger:      n.log,
	})
	return err
}

// indexEvents keeps what the index needs of the events: which mailboxes
// changed. Flag changes do not change text.
func indexEvents(events []raftfsm.Event) []search.Event {
	var out []search.Event
	for _, e := range events {
		if e.Kind != raftfsm.FlagsChanged && e.MailboxID != 0 {
			out = append(out, search.Event{UserID: e.UserID, MailboxID: e.MailboxID, Bulk: e.Bulk})
		}
	}
	return out
}

func firstNonZero(a, b uint64) uint64 {
	if a != 0 {
		return a
	}
	return b
}
