package canon

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits. Part of the state machine's determinism contract (package doc).
const (
	MaxEmailLen       = 254
	MaxLocalLen       = 64
	MaxDomainLen      = 253
	MaxLabelLen       = 63
	MaxMailboxNameLen = 512
	MaxMailboxDepth   = 32
)

// ErrInvalid is wrapped by every refusal.
var ErrInvalid = errors.New("canon: invalid")

// ASCIILower lower-cases ASCII letters only. strings.ToLower depends on the
// Unicode tables of the Go release, which would let two binaries disagree.
func ASCIILower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// ASCIIEqualFold reports whether a and b are equal ignoring ASCII case.
func ASCIIEqualFold(a, b string) bool { return len(a) == len(b) && ASCIILower(a) == ASCIILower(b) }

// Domain returns the canonical (lower-case) form of a DNS name (RFC 1035
// §2.3.1 letters, digits, hyphens).
func Domain(s string) (string, error) {
	d := ASCIILower(s)
	if d == "" || len(d) > MaxDomainLen {
		return "", fmt.Errorf("%w: domain %q: want 1 to %d octets", ErrInvalid, s, MaxDomainLen)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > MaxLabelLen || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%w: domain %q is not a valid host name", ErrInvalid, s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: domain %q is not a valid host name (letters, digits and hyphens; an internationalised name in its punycode form)", ErrInvalid, s)
			}
		}
	}
	return d, nil
}

// LocalPart checks an RFC 5322 dot-atom local part of ASCII atext.
func LocalPart(s string) error {
	if s == "" || len(s) > MaxLocalLen {
		return fmt.Errorf("%w: local part %q: want 1 to %d octets", ErrInvalid, s, MaxLocalLen)
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return fmt.Errorf("%w: local part %q: misplaced dot", ErrInvalid, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0 {
			continue
		}
		if c >= 0x80 {
			return fmt.Errorf("%w: local part %q: non-ASCII characters are not supported (no SMTPUTF8)", ErrInvalid, s)
		}
		return fmt.Errorf("%w: local part %q: character %q not allowed", ErrInvalid, s, c)
	}
	return nil
}

// Email returns the canonical (lower-case) address and its domain.
func Email(s string) (email, domain string, err error) { return address(s, false) }

// address is Email, and with utf8Local Recipient.
func address(s string, utf8Local bool) (email, domain string, err error) {
	if len(s) > MaxEmailLen {
		return "", "", fmt.Errorf("%w: address of %d octets, over %d", ErrInvalid, len(s), MaxEmailLen)
	}
	e := ASCIILower(s)
	at := strings.LastIndexByte(e, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%w: address %q: want local@domain", ErrInvalid, s)
	}
	if err := LocalPart(e[:at]); err != nil && !(utf8Local && utf8LocalPart(e[:at])) {
		return "", "", fmt.Errorf("address %q: %w", s, err)
	}
	d, err := Domain(e[at+1:])
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", s, err)
	}
	return e, d, nil
}

// MailboxName returns the canonical form of a mailbox name (package doc).
func MailboxName(s string) (string, error) {
	if s == "" || len(s) > MaxMailboxNameLen {
		return "", fmt.Errorf("%w: mailbox name: want 1 to %d octets", ErrInvalid, MaxMailboxNameLen)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: mailbox name %q is not UTF-8", ErrInvalid, s)
	}
	parts := strings.Split(s, "/")
	if len(parts) > MaxMailboxDepth {
		return "", fmt.Errorf("%w: mailbox name %q: over %d levels", ErrInvalid, s, MaxMailboxDepth)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("%w: mailbox name %q: empty, \".\" or \"..\" level", ErrInvalid, s)
		}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return "", fmt.Errorf("%w: mailbox name %q: character %q not allowed", ErrInvalid, s, r)
		}
	}
	if ASCIIEqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
		s = strings.Join(parts, "/")
	}
	return s, nil
}

// Recipient checks an address as a client may send it: Email's rules,
// except that the local part may also hold UTF-8 (RFC 6531; the SMTP
// server offers SMTPUTF8). It returns the address with the local part's
// ASCII letters lower-cased and the domain canonical. It is for looking
// names up, never for storing them: an address Email accepts is returned
// alike by both, and one only Recipient accepts matches no stored user or
// alias (none can be created with it), only a domain's catch-all.
func Recipient(s string) (email, domain string, err error) { return address(s, true) }

// utf8LocalPart is LocalPart with UTF-8 (RFC 6531 atext) allowed.
func utf8LocalPart(s string) bool {
	if !utf8.ValidString(s) || s == "" || len(s) > MaxLocalLen || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 0x80 && r != utf8.RuneError:
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r)):
		default:
			return false
		}
	}
	return true
}
