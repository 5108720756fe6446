package wire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3): printable US-ASCII stands for itself
// except "&", which is "&-"; anything else is UTF-16BE in modified BASE64
// ("," for "/", no padding) between "&" and "-".

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// ErrMUTF7 is the error of DecodeMUTF7; its text is what a client is told.
var ErrMUTF7 = errors.New("mailbox name is not valid modified UTF-7 (RFC 3501 §5.1.3)")

// EncodeMUTF7 encodes a UTF-8 name in modified UTF-7. Invalid UTF-8 bytes
// are encoded as U+FFFD.
func EncodeMUTF7(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			if c == '&' {
				sb.WriteString("&-")
			} else {
				sb.WriteByte(c)
			}
			i++
			continue
		}
		// A run of characters outside printable ASCII.
		var u []uint16
		for i < len(s) && (s[i] < 0x20 || s[i] > 0x7e) {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			u = utf16.AppendRune(u, r)
		}
		b := make([]byte, 2*len(u))
		for j, v := range u {
			b[2*j], b[2*j+1] = byte(v>>8), byte(v)
		}
		sb.WriteByte('&')
		sb.WriteString(mutf7.EncodeToString(b))
		sb.WriteByte('-')
	}
	return sb.String()
}

// DecodeMUTF7 decodes a modified UTF-7 name to UTF-8. It accepts only the
// one canonical spelling of each name, as Dovecot does: no 8-bit or
// control bytes, no printable ASCII inside a base64 run, no two runs side
// by side ("&AOQ-&APY-" is "&AOQA9g-"), no nonzero padding bits, and
// well-formed UTF-16 surrogate pairs.
func DecodeMUTF7(s string) (string, error) {
	var sb strings.Builder
	prevRun := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", ErrMUTF7
		}
		if c != '&' {
			sb.WriteByte(c)
			i++
			prevRun = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", ErrMUTF7
		}
		run := s[i+1 : i+1+end]
		i += end + 2
		if run == "" {
			sb.WriteByte('&')
			prevRun = false
			continue
		}
		if prevRun {
			return "", ErrMUTF7
		}
		prevRun = true
		// Only the modified base64 alphabet: encoding/base64 skips CR and
		// LF inside its input, which would let "&\n-" stand for nothing.
		if strings.TrimFunc(run, isMUTF7Base64) != "" {
			return "", ErrMUTF7
		}
		b, err := mutf7.Strict().DecodeString(run)
		if err != nil || len(b)%2 != 0 {
			return "", ErrMUTF7
		}
		u := make([]uint16, len(b)/2)
		for j := range u {
			u[j] = uint16(b[2*j])<<8 | uint16(b[2*j+1])
		}
		for j := 0; j < len(u); j++ {
			v := u[j]
			switch {
			case v >= 0x20 && v <= 0x7e:
				return "", ErrMUTF7 // printable ASCII must stand for itself
			case utf16.IsSurrogate(rune(v)):
				if v >= 0xdc00 || j+1 == len(u) {
					return "", ErrMUTF7
				}
				r := utf16.DecodeRune(rune(v), rune(u[j+1]))
				if r == utf8.RuneError {
					return "", ErrMUTF7
				}
				sb.WriteRune(r)
				j++
			default:
				sb.WriteRune(rune(v))
			}
		}
	}
	return sb.String(), nil
}

// ErrMailboxName is returned by DecodeMailbox for a name that is neither
// valid modified UTF-7 nor (with UTF8=ACCEPT) valid UTF-8.
var ErrMailboxName = errors.New("mailbox name is not valid UTF-8 or modified UTF-7")

// DecodeMailbox turns a mailbox name as the client sent it into UTF-8.
// With UTF8=ACCEPT enabled (RFC 6855 §3) names are UTF-8 and "&" is an
// ordinary character. Otherwise they are modified UTF-7; a name with 8-bit
// bytes that is valid UTF-8 is taken as UTF-8 (clients that send UTF-8
// without enabling it are common, and such a name cannot be mUTF-7).
// Controls are refused in both cases.
func DecodeMailbox(s string, utf8Mode bool) (string, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return "", ErrMailboxName
		}
	}
	if utf8Mode {
		if !utf8.ValidString(s) {
			return "", ErrMailboxName
		}
		return s, nil
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		if utf8.ValidString(s) {
			return s, nil
		}
		return "", ErrMailboxName
	}
	return DecodeMUTF7(s)
}

// isMUTF7Base64 reports whether r is in RFC 3501's modified base64 alphabet.
func isMUTF7Base64(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == ','
}
