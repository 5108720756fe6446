package mail

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"github.com/continuum-mail/continuum/raftfsm/canon"
)

// The canonical forms are package canon's, which are the state machine's
// rules: an address CanonicalEmail accepts is one a command may carry.
// Here the input is only prepared: spaces trimmed, and an internationalised
// domain converted to its ASCII (punycode) form, which canon requires.

// CanonicalEmail validates an address that names a user, an alias or an
// alias target, and returns its canonical form (canon.Email): lower-cased,
// the domain in its ASCII form. Quoted and UTF-8 local parts are refused:
// no user is created with one.
func CanonicalEmail(s string) (string, error) { return canonicalAddress(s, canon.Email) }

// recipientAddress is CanonicalEmail for an envelope recipient being looked
// up (canon.Recipient): a UTF-8 local part (SMTPUTF8) is accepted; it can
// match only a domain's catch-all.
func recipientAddress(s string) (string, error) { return canonicalAddress(s, canon.Recipient) }

// canonicalAddress prepares s (splitAddress) and checks it with rule.
func canonicalAddress(s string, rule func(string) (string, string, error)) (string, error) {
	local, domain, err := splitAddress(s)
	if err != nil {
		return "", err
	}
	e, _, err := rule(local + "@" + domain)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return e, nil
}

// splitAddress trims s and returns its local part and its domain in ASCII
// form.
func splitAddress(s string) (local, domain string, err error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", fmt.Errorf("%w: address %q: want local@domain", ErrInvalid, s)
	}
	d, err := CanonicalDomain(s[at+1:])
	if err != nil {
		return "", "", err
	}
	return s[:at], d, nil
}

// CanonicalDomain validates a domain name and returns its canonical
// (canon.Domain) form; an internationalised name is converted to punycode
// first.
func CanonicalDomain(s string) (string, error) {
	d, err := idna.Lookup.ToASCII(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if err != nil {
		return "", fmt.Errorf("%w: domain %q is not a valid host name", ErrInvalid, s)
	}
	if d, err = canon.Domain(d); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return d, nil
}
