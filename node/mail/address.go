package mail

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// CanonicalEmail validates an address and returns it lower-cased, with the
// domain in its ASCII (punycode) form. Quoted local parts are refused: no
// user is created with one.
func CanonicalEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", fmt.Errorf("%w: address %q: want local@domain", ErrInvalid, s)
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 {
		return "", fmt.Errorf("%w: address %q: local part over 64 octets", ErrInvalid, s)
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", fmt.Errorf("%w: address %q: misplaced dot", ErrInvalid, s)
	}
	for _, r := range local {
		if !isAtext(r) && r != '.' {
			return "", fmt.Errorf("%w: address %q: character %q not allowed in the local part", ErrInvalid, s, r)
		}
	}
	d, err := CanonicalDomain(domain)
	if err != nil {
		return "", err
	}
	return strings.ToLower(local) + "@" + d, nil
}

// CanonicalDomain validates a domain name and returns its lower-case ASCII
// form.
func CanonicalDomain(s string) (string, error) {
	d, err := idna.Lookup.ToASCII(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if err != nil || d == "" || len(d) > 253 {
		return "", fmt.Errorf("%w: domain %q is not a valid host name", ErrInvalid, s)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", fmt.Errorf("%w: domain %q is not a valid host name", ErrInvalid, s)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", fmt.Errorf("%w: domain %q is not a valid host name", ErrInvalid, s)
			}
		}
	}
	return d, nil
}

// isAtext reports RFC 5322 §3.2.3 atext, plus UTF-8 (RFC 6531).
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r > 127:
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}
