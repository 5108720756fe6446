package imapd

import (
	"strings"
	"testing"
)

func TestMatchList(t *testing.T) {
	for _, tc := range []struct {
		name, ref, pattern string
		want               bool
	}{
		{"INBOX", "", "*", true},
		{"INBOX", "", "%", true},
		{"Work/2024", "", "%", false},
		{"Work/2024", "", "*", true},
		{"Work/2024", "", "Work/%", true},
		{"Work/2024/Q1", "", "Work/%", false},
		{"Work/2024/Q1", "Work/", "*", true},
		{"Work/2024/Q1", "Work/", "%/Q1", true},
		{"Work", "Other/", "/Work", true}, // a pattern from the root ignores the reference
		{"Archive", "", "A*e", true},
		{"Archive", "", "A%x", false},
		{"Archive", "", "Archive", true},
		{"Archive", "", "archive", false},
		{"", "", "", true},
		{strings.Repeat("a", 1000), "", strings.Repeat("*a", 500) + "b", false}, // no exponential blow-up
	} {
		if got := matchList(tc.name, tc.ref, tc.pattern); got != tc.want {
			t.Errorf("matchList(%q, %q, %q) = %v, want %v", tc.name, tc.ref, tc.pattern, got, tc.want)
		}
	}
}
