package imapd

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/mail"
)

// Errors of this package that are not node/mail's; each has a row below.
var (
	errNoMailbox    = errors.New("imapd: no such mailbox")
	errReadOnly     = errors.New("imapd: mailbox is read-only")
	errCutOff       = errors.New("imapd: node is cut off from the cluster")
	errNoSuchPart   = errors.New("imapd: no such message part")
	errThrottled    = errors.New("imapd: too many failed logins")
	errBadName      = errors.New("imapd: bad mailbox name")
	errNoSelectable = errors.New("imapd: mailbox cannot be selected")
)

// replyTable is the one mapping of errors to IMAP responses (RFC 5530
// response codes). The first row whose error matches wins. A temporary
// failure of the cluster is always NO [UNAVAILABLE], never a permanent
// refusal and never OK (docs/ARCHITECTURE.md §1).
var replyTable = []struct {
	err  error
	code imap.ResponseCode
	text string
}{
	{mail.ErrUnavailable, imap.ResponseCodeUnavailable, "Cluster unavailable, try again later"},
	{mail.ErrStorageFull, imap.ResponseCodeUnavailable, "Storage full, try again later"},
	{mail.ErrUnknownOutcome, imap.ResponseCodeUnavailable, "Outcome unknown, try again later"},
	{errCutOff, imap.ResponseCodeUnavailable, "This node is cut off from the cluster: read-only, try again later"},
	{errNoMailbox, imap.ResponseCodeNonExistent, "No such mailbox"},
	{errBadName, imap.ResponseCodeNonExistent, "No such mailbox"},
	{mail.ErrNotFound, imap.ResponseCodeNonExistent, "No such mailbox"},
	{mail.ErrExists, imap.ResponseCodeAlreadyExists, "Mailbox already exists"},
	{mail.ErrOverQuota, imap.ResponseCodeOverQuota, "Over quota"},
	{mail.ErrTooBig, imap.ResponseCodeTooBig, "Message too big"},
	{mail.ErrNotEmpty, imap.ResponseCodeHasChildren, "Mailbox has children"},
	{mail.ErrModified, imap.ResponseCodeCannot, "Modified since"},
	{mail.ErrAuthFailed, imap.ResponseCodeAuthenticationFailed, "Authentication failed"},
	{errThrottled, imap.ResponseCodeAuthenticationFailed, "Authentication failed"},
	{errReadOnly, imap.ResponseCodeCannot, "Mailbox is read-only"},
	{errNoSelectable, imap.ResponseCodeCannot, "Mailbox cannot be selected"},
	{errNoSuchPart, imap.ResponseCodeCannot, "No such message part"},
	{mail.ErrInvalid, imap.ResponseCodeCannot, "Invalid request"},
}

// reply translates err for the client. An error the table does not know
// is a server bug: logged by the caller, reported as NO [SERVERBUG].
func reply(err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie
	}
	for _, r := range replyTable {
		if errors.Is(err, r.err) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: r.code, Text: r.text}
		}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal server error"}
}
