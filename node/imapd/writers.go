package imapd

import (
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// The session writes its responses through these interfaces; conn.go's
// writers encode them with node/imapd/wire.

// updateWriter reports mailbox changes (EXPUNGE, EXISTS, FLAGS, FETCH
// FLAGS).
type updateWriter interface {
	WriteExpunge(seqNum uint32) error
	WriteNumMessages(n uint32) error
	WriteNumRecent(n uint32) error
	WriteMailboxFlags(flags []imap.Flag) error
	// WriteMessageFlags reports a message's flags; modseq is written too
	// when not 0 (CONDSTORE).
	WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, modseq uint64) error
}

// fetchWriter starts one FETCH response per message.
type fetchWriter interface {
	CreateMessage(seqNum uint32) fetchResponseWriter
}

// fetchResponseWriter writes the items of one FETCH response.
type fetchResponseWriter interface {
	WriteUID(uid imap.UID)
	WriteFlags(flags []imap.Flag)
	WriteInternalDate(t time.Time)
	WriteRFC822Size(size int64)
	WriteEnvelope(env *storagepb.Envelope)
	WriteBodyStructure(bs imap.BodyStructure)
	WriteBodySection(section *imap.FetchItemBodySection, size int64) io.WriteCloser
	// WriteBodySectionBytes is WriteBodySection of a section already in
	// memory.
	WriteBodySectionBytes(section *imap.FetchItemBodySection, b []byte) error
	WriteBinarySection(section *imap.FetchItemBinarySection, size int64) io.WriteCloser
	WriteBinarySectionSize(section *imap.FetchItemBinarySectionSize, size uint32)
	WriteModSeq(modseq uint64)
	Close() error
}

// moveWriter reports MOVE's COPYUID and expunges.
type moveWriter interface {
	WriteCopyData(data *imap.CopyData) error
	WriteExpunge(seqNum uint32) error
}
