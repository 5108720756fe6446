package failpoint

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	got, err := parse(" mail/deliver-drop=every(10); raft/transport-delay=delay(40ms-80ms) ;")
	if err != nil {
		t.Fatal(err)
	}
	if got[DeliverDrop].every != 10 || got[RaftDelay].lo != 40*time.Millisecond || got[RaftDelay].hi != 80*time.Millisecond || len(got) != 2 {
		t.Fatalf("parse = %+v", got)
	}
	for _, bad := range []string{"nosuch/point=every(1)", "mail/deliver-drop", "mail/deliver-drop=every(0)", "mail/deliver-drop=every(x)",
		"raft/transport-delay=delay(80ms-40ms)", "raft/transport-delay=delay(40ms)", "storage/commit=sometimes"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) accepted it", bad)
		}
	}
}

// Without the tag nothing fires, whatever is asked.
func TestOffWithoutTheTag(t *testing.T) {
	if Enabled {
		t.Skip("built with -tags failpoints")
	}
	for _, n := range Names {
		for i := uint64(0); i < 20; i++ {
			if Hit(n, i) {
				t.Fatalf("%s fired without the tag", n)
			}
		}
	}
}
