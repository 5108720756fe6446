package migrate

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgress(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		var buf bytes.Buffer
		p := NewProgress(&buf, terminal, "import")
		p.Total(10, 4096)
		p.Add(4, 2048)
		p.Note("%s: %d messages there already", "INBOX", 3)
		p.Add(6, 2048)
		p.Done()
		out := buf.String()
		for _, want := range []string{"10/10", "4.0 KiB", "INBOX: 3 messages there already"} {
			if !strings.Contains(out, want) {
				t.Errorf("terminal %v: output lacks %q:\n%q", terminal, want, out)
			}
		}
	}
}
