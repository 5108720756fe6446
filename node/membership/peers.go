package membership

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/memberlist"
)

// The peers file remembers where the other members gossip, so that a
// restarted node finds the pool again by itself. memberlist forgets a
// member it has declared dead, and a restarted node knows nobody: a node
// started without --join (the first node, which bootstrapped) would
// otherwise stay alone in gossip after a restart while the others count it
// dead, with no gRPC addresses to forward writes to and no login-throttle
// datagrams (the restart in TestGossipKeyRotation, when it hit n1). Serf's
// snapshot does the same for Consul.

// peersFile is the file's content: member ID → gossip address.
type peersFile struct {
	Peers map[string]string `json:"peers"`
}

// loadPeers reads the peers file; a missing file is no peers, a damaged
// one is reported and ignored (it is a hint, not state).
func (p *Pool) loadPeers() {
	p.peers = map[string]string{}
	if p.cfg.PeersFile == "" {
		return
	}
	b, err := os.ReadFile(p.cfg.PeersFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var f peersFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		p.cfg.Logger.Warn("gossip peers file ignored", "component", "membership", "file", p.cfg.PeersFile, "err", err)
		return
	}
	for id, addr := range f.Peers {
		if id != p.cfg.Meta.ID && addr != "" && addr != p.cfg.GossipAddr {
			p.peers[id] = addr
		}
	}
}

// Remembered returns the gossip addresses of the members this node knew
// when it last ran (and has seen since), sorted: with --join, where a
// restarted node looks for the pool.
func (p *Pool) Remembered() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.peers))
	for _, a := range p.peers {
		out = append(out, a)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rememberLocked records a change of member n (p.mu held) and reports
// whether the file must be rewritten: a member seen alive is remembered at
// its current address. One that leaves or dies is kept: a clean stop
// leaves the pool too, and the node will be back. (An entry for a node
// removed from the cluster for good stays; it costs one failed connection
// when this node starts.)
func (p *Pool) rememberLocked(n *memberlist.Node, alive bool) bool {
	if !alive || n.Name == p.cfg.Meta.ID || p.peers == nil {
		return false
	}
	if addr := n.Address(); p.peers[n.Name] != addr {
		p.peers[n.Name] = addr
		return true
	}
	return false
}

// savePeers writes the peers file (writeFileAtomic). Writes are serialized by peersMu and each writes the
// newest set, so the last one wins.
func (p *Pool) savePeers() {
	if p.cfg.PeersFile == "" {
		return
	}
	p.peersMu.Lock()
	defer p.peersMu.Unlock()
	p.mu.Lock()
	b, err := json.Marshal(peersFile{Peers: p.peers})
	p.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(p.cfg.PeersFile, b, false)
	}
	if err != nil {
		p.cfg.Logger.Warn("gossip peers file not saved", "component", "membership", "file", p.cfg.PeersFile, "err", err)
	}
}

// writeFileAtomic writes b to path (mode 0600) through a rename, so a
// crash leaves the old or the new file, never half of one; sync makes the
// new content durable first (the keyring; not the peers file, a hint
// written from memberlist's event goroutine, which must not wait on disk).
func writeFileAtomic(path string, b []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
