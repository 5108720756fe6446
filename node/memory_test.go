package node

import (
	"testing"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/raftfsm"
)

// TestEntryBound: the Raft batch budget (consensus) assumes the FSM's
// bound on an entry's message data; the proposer cuts chunks to the same.
func TestEntryBound(t *testing.T) {
	if raftfsm.MaxChunkBytes != mail.ChunkBytes {
		t.Errorf("raftfsm.MaxChunkBytes %d != mail.ChunkBytes %d", raftfsm.MaxChunkBytes, mail.ChunkBytes)
	}
	if raftfsm.MaxChunkBytes >= consensus.MaxEntryBytes {
		t.Errorf("raftfsm.MaxChunkBytes %d leaves no room for the envelope in consensus.MaxEntryBytes %d", raftfsm.MaxChunkBytes, consensus.MaxEntryBytes)
	}
	if got := consensus.MaxAppendEntries * consensus.MaxEntryBytes; got > consensus.AppendBudget || consensus.MaxAppendEntries < 1 {
		t.Errorf("MaxAppendEntries %d × MaxEntryBytes %d = %d, budget %d", consensus.MaxAppendEntries, consensus.MaxEntryBytes, got, consensus.AppendBudget)
	}
}
