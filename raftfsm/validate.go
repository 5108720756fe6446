package raftfsm

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on what a command may carry. They are part of the determinism
// contract: changing one changes which commands succeed, so a change must be
// gated on a new command version, never made in place.
const (
	maxEmailLen       = 254
	maxLocalLen       = 64
	maxDomainLen      = 253
	maxMailboxNameLen = 512
	maxMailboxDepth   = 32
	maxFlagLen        = 128
	maxFlags          = 100
	maxAliasTargets   = 100
	maxDedupeKeyLen   = 64
	maxPasswordHash   = 1024
	maxUIDRanges      = 1000
	dedupeTTL         = 7 * 24 * 60 * 60 * 1e9 // nanoseconds
	expirePerCommand  = 64
)

// asciiLower lower-cases ASCII letters only. strings.ToLower depends on the
// Unicode tables of the Go release, which would let two binaries disagree.
func asciiLower(s string) string {
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

func asciiEqualFold(a, b string) bool { return len(a) == len(b) && asciiLower(a) == asciiLower(b) }

// normalizeDomain returns the lower-case domain name, or false when it is not
// a syntactically valid DNS name (RFC 1035 §2.3.1 letters, digits, hyphens).
func normalizeDomain(s string) (string, bool) {
	s = asciiLower(s)
	if s == "" || len(s) > maxDomainLen {
		return "", false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return s, true
}

// validLocalPart accepts an RFC 5322 dot-atom local part (ASCII only).
func validLocalPart(s string) bool {
	if s == "" || len(s) > maxLocalLen || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// normalizeEmail returns the lower-case address and its domain.
func normalizeEmail(s string) (email, domain string, ok bool) {
	if len(s) > maxEmailLen {
		return "", "", false
	}
	s = asciiLower(s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 || !validLocalPart(s[:at]) {
		return "", "", false
	}
	d, ok := normalizeDomain(s[at+1:])
	if !ok {
		return "", "", false
	}
	return s, d, true
}

// normalizeMailboxName checks a mailbox name and returns its canonical form:
// "/" separates levels, no level is empty, "." or "..", no control characters
// or IMAP wildcards, and a first level equal to INBOX in any case becomes
// "INBOX" (RFC 9051 §5.1: INBOX is case-insensitive).
func normalizeMailboxName(s string) (string, bool) {
	if s == "" || len(s) > maxMailboxNameLen || !utf8.ValidString(s) {
		return "", false
	}
	parts := strings.Split(s, "/")
	if len(parts) > maxMailboxDepth {
		return "", false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", false
		}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return "", false
		}
	}
	if asciiEqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
		s = strings.Join(parts, "/")
	}
	return s, true
}

// parentNames returns the ancestors of a normalized name, outermost first.
func parentNames(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}

var systemFlags = []string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}

var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

// normalizeFlags returns the canonical flag list: system flags in their RFC
// 9051 §2.3.2 spelling, \Recent dropped (it is never stored), keywords as
// first seen, unique ignoring ASCII case, sorted.
func normalizeFlags(in []string) ([]string, bool) {
	if len(in) > maxFlags {
		return nil, false
	}
	out := make([]string, 0, len(in))
	for _, f := range in {
		if f == "" || len(f) > maxFlagLen {
			return nil, false
		}
		if f[0] == '\\' {
			if asciiEqualFold(f, `\Recent`) {
				continue
			}
			i := slices.IndexFunc(systemFlags, func(s string) bool { return asciiEqualFold(s, f) })
			if i < 0 {
				return nil, false
			}
			f = systemFlags[i]
		} else {
			for i := 0; i < len(f); i++ {
				c := f[i]
				if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
					return nil, false
				}
			}
		}
		if !slices.ContainsFunc(out, func(s string) bool { return asciiEqualFold(s, f) }) {
			out = append(out, f)
		}
	}
	sortFlags(out)
	return out, true
}

func sortFlags(f []string) {
	slices.SortFunc(f, func(a, b string) int {
		return strings.Compare(asciiLower(a), asciiLower(b))
	})
}

func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(s string) bool { return asciiEqualFold(s, f) })
}

func normalizeSpecialUse(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	i := slices.IndexFunc(specialUses, func(u string) bool { return asciiEqualFold(u, s) })
	if i < 0 {
		return "", false
	}
	return specialUses[i], true
}
