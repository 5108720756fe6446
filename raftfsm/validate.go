package raftfsm

import (
	"slices"
	"strings"

	"github.com/continuum-mail/continuum/raftfsm/canon"
)

// Limits on what a command may carry. They are part of the determinism
// contract: changing one changes which commands succeed, so a change must be
// gated on a new command version, never made in place.
const (
	maxEmailLen       = canon.MaxEmailLen
	maxLocalLen       = canon.MaxLocalLen
	maxDomainLen      = canon.MaxDomainLen
	maxMailboxNameLen = canon.MaxMailboxNameLen
	maxMailboxDepth   = canon.MaxMailboxDepth
	maxFlagLen        = 128
	maxFlags          = 100
	maxAliasTargets   = 100
	maxDedupeKeyLen   = 64
	maxPasswordHash   = 1024
	maxUIDRanges      = 1000
	dedupeTTL         = 7 * 24 * 60 * 60 * 1e9 // nanoseconds
	expirePerCommand  = 64
)

// The canonical forms of names (email, domain, mailbox name) are package
// canon's: the rules there are this state machine's, part of its
// determinism contract, shared with node/mail and the frontends so that
// what they accept is what a command may carry.

func asciiLower(s string) string { return canon.ASCIILower(s) }

func asciiEqualFold(a, b string) bool { return canon.ASCIIEqualFold(a, b) }

// normalizeDomain returns the lower-case domain name, or false when it is not
// a syntactically valid DNS name (RFC 1035 §2.3.1 letters, digits, hyphens).
func normalizeDomain(s string) (string, bool) {
	d, err := canon.Domain(s)
	return d, err == nil
}

// validLocalPart accepts an RFC 5322 dot-atom local part (ASCII only).
func validLocalPart(s string) bool { return canon.LocalPart(s) == nil }

// normalizeEmail returns the lower-case address and its domain.
func normalizeEmail(s string) (email, domain string, ok bool) {
	email, domain, err := canon.Email(s)
	return email, domain, err == nil
}

// normalizeMailboxName checks a mailbox name and returns its canonical form
// (canon.MailboxName).
func normalizeMailboxName(s string) (string, bool) {
	name, err := canon.MailboxName(s)
	return name, err == nil
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
