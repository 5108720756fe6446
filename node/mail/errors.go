package mail

import (
	"errors"
	"fmt"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
)

// Errors returned by this package. Temporary ones (ErrUnavailable,
// ErrUnknownOutcome) must reach clients as temporary failures, never as a
// permanent rejection or a success.
var (
	ErrUnavailable    = errors.New("mail: cluster unavailable (no leader)")
	ErrUnknownOutcome = errors.New("mail: outcome unknown; retry")
	ErrNotFound       = errors.New("mail: not found")
	ErrExists         = errors.New("mail: already exists")
	ErrOverQuota      = errors.New("mail: over quota")
	ErrInvalid        = errors.New("mail: invalid")
	ErrNotEmpty       = errors.New("mail: not empty")
	ErrModified       = errors.New("mail: modified since")
	ErrAuthFailed     = errors.New("mail: authentication failed")
	ErrNotLocalDomain = errors.New("mail: domain is not local")
	ErrNoSuchUser     = errors.New("mail: no such user")
	ErrTooBig         = errors.New("mail: message too big")
	// ErrStorageFull: the cluster cannot write because a disk is full
	// (SMTP 452 4.3.1); nothing was stored.
	ErrStorageFull = errors.New("mail: storage full")
	// ErrHeld: refused because the user or domain is under legal hold.
	ErrHeld = errors.New("mail: under legal hold")
)

// IsTemporary reports whether err is a temporary failure of the cluster.
func IsTemporary(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrStorageFull)
}

// proposeError maps consensus and transport errors to this package's.
func proposeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrStorageFull):
		return fmt.Errorf("%w: %v", ErrStorageFull, err)
	case errors.Is(err, consensus.ErrNoLeader), errors.Is(err, consensus.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	default:
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
}

// codeError maps a state machine result code to an error (nil for OK).
func codeError(r *commandpb.Result) error {
	var base error
	switch r.GetCode() {
	case commandpb.Code_CODE_OK:
		return nil
	case commandpb.Code_CODE_EXISTS:
		base = ErrExists
	case commandpb.Code_CODE_NOT_FOUND:
		base = ErrNotFound
	case commandpb.Code_CODE_OVER_QUOTA:
		base = ErrOverQuota
	case commandpb.Code_CODE_NOT_EMPTY:
		base = ErrNotEmpty
	case commandpb.Code_CODE_MODIFIED:
		base = ErrModified
	case commandpb.Code_CODE_HELD:
		base = ErrHeld
	case commandpb.Code_CODE_INCOMPLETE:
		// A chunked upload that expired before its message was proposed
		// (or lost chunks to an ambiguous outcome): a retry sends it again.
		base = ErrUnknownOutcome
	default:
		base = ErrInvalid
	}
	if r.GetMessage() != "" {
		return fmt.Errorf("%w: %s", base, r.GetMessage())
	}
	return base
}
