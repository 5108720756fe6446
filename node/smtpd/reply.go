package smtpd

import (
	"errors"
	"net"

	"github.com/emersion/go-smtp"

	"github.com/continuum-mail/continuum/node/mail"
)

// Errors this package raises itself; mail's sentinels come through as they
// are. reply turns either into the wire reply.
var (
	errCutOff         = errors.New("smtpd: node cut off from the cluster")
	errTooManyConns   = errors.New("smtpd: too many connections from this address")
	errServerBusy     = errors.New("smtpd: too many connections in total")
	errPregreet       = errors.New("smtpd: client talked before the greeting")
	errHTTP           = errors.New("smtpd: HTTP request on an SMTP port")
	errBareLineEnding = errors.New("smtpd: bare CR or LF in message data")
	errNUL            = errors.New("smtpd: NUL byte in message data")
	errBadAddress     = errors.New("smtpd: malformed address")
	errPartial        = errors.New("smtpd: some recipients were not delivered")
	errAuthNeedsTLS   = errors.New("smtpd: AUTH before TLS")
	errAuthNotHere    = errors.New("smtpd: AUTH on an MX")
	errTimeout        = errors.New("smtpd: timeout")
)

// replyEntry is one row of the reply table. close means the session ends
// after the reply: the stream can no longer be trusted to be in step.
type replyEntry struct {
	err   error
	reply *smtp.SMTPError
	close bool
}

func code(c int, class, subject, detail int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: msg}
}

// replies is the one table from errors to SMTP/LMTP replies (docs/TESTPLAN.md §4).
// Order matters only where one error wraps another. Enhanced codes: RFC 3463.
var replies = []replyEntry{
	// Connection level (listener.go).
	{errCutOff, code(421, 4, 3, 2, "cluster unavailable, try another MX"), true},
	{errTooManyConns, code(421, 4, 7, 0, "too many connections from your address"), true},
	{errServerBusy, code(421, 4, 3, 2, "too many connections, try again later"), true},
	{errPregreet, code(554, 5, 5, 1, "protocol error: you talked before the greeting"), true},
	{errHTTP, code(554, 5, 5, 1, "this is an SMTP server, not HTTP"), true},
	{errTimeout, code(421, 4, 4, 2, "timeout, closing connection"), true},
	{smtp.ErrTooLongLine, code(500, 5, 5, 2, "line too long, closing connection"), true},

	// Message data.
	{errBareLineEnding, code(521, 5, 5, 2, "bare CR or LF in message (RFC 5321 §2.3.8), closing connection"), true},
	{errNUL, code(554, 5, 6, 0, "message contains NUL bytes"), false},
	{mail.ErrTooBig, code(552, 5, 3, 4, "message too big"), false},
	{smtp.ErrDataTooLarge, code(552, 5, 3, 4, "message too big"), false},
	{mail.ErrInvalid, code(554, 5, 6, 0, "message rejected: malformed or too complex"), false},

	// Recipients.
	{errBadAddress, code(501, 5, 1, 3, "bad recipient address syntax"), false},
	{mail.ErrNotLocalDomain, code(550, 5, 7, 1, "relay access denied"), false},
	{mail.ErrNoSuchUser, code(550, 5, 1, 1, "no such user"), false},
	{mail.ErrOverQuota, code(452, 4, 2, 2, "mailbox full"), false},
	{errPartial, code(451, 4, 3, 0, "not every recipient was delivered; retry (delivered ones get no second copy)"), false},

	// The cluster: always temporary (docs/ARCHITECTURE.md §1).
	{mail.ErrUnavailable, code(451, 4, 3, 0, "cluster unavailable, try again later"), false},
	{mail.ErrUnknownOutcome, code(451, 4, 3, 0, "outcome unknown, please retry"), false},
	{mail.ErrStorageFull, code(452, 4, 3, 1, "insufficient system storage, try again later"), false},

	// AUTH (RFC 4954).
	{errAuthNeedsTLS, code(538, 5, 7, 11, "encryption required: issue STARTTLS first"), false},
	{errAuthNotHere, code(502, 5, 5, 1, "AUTH not available on this MX; use the submission service"), false},
}

// replyDefault answers everything the table does not know: temporary, so a
// surprise in the cluster never bounces mail.
var replyDefault = replyEntry{nil, code(451, 4, 3, 0, "temporary failure, try again later"), false}

// reply returns the table row for err.
func reply(err error) replyEntry {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = errTimeout
	}
	for _, r := range replies {
		if errors.Is(err, r.err) {
			return r
		}
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyEntry{err, se, false}
	}
	return replyDefault
}

// replyErr is reply(err).reply as an error for go-smtp, nil for nil.
func replyErr(err error) error {
	if err == nil {
		return nil
	}
	return reply(err).reply
}
