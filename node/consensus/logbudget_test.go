package consensus

import (
	"testing"

	"github.com/hashicorp/raft"
)

func TestLogLimits(t *testing.T) {
	base := raft.ReloadableConfig{TrailingLogs: 10240, SnapshotThreshold: 8192}
	tests := []struct {
		name             string
		size             int64
		entries          uint64
		trailing, thresh uint64
	}{
		{"empty log keeps the configuration", 0, 0, 10240, 8192},
		{"1 KiB entries fit: the configuration", 10240 << 10, 10240, 10240, 8192},
		{"1 MiB chunks: 512 each for a 1 GiB budget", 2000 << 20, 2000, 512, 512},
		{"4 MiB entries: never below the floor", 4000 << 20, 1000, 256, 256},
		{"64 KiB entries: 8192 each", 1000 << 16, 1000, 8192, 8192},
	}
	for _, tt := range tests {
		tr, th := logLimits(tt.size, tt.entries, 1<<30, base)
		if tr != tt.trailing || th != tt.thresh {
			t.Errorf("%s: got trailing %d, threshold %d; want %d, %d", tt.name, tr, th, tt.trailing, tt.thresh)
		}
	}
}
