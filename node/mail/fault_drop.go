//go:build faultdrop

package mail

import (
	"log/slog"
	"sync/atomic"
)

// A planted fault for node/clustertest (TestCheckerCatchesPlantedLoss): in
// a binary built with -tags faultdrop, every 10th delivery is acknowledged
// without being proposed, which is exactly the lie the set-full checker
// must catch. Never build a release with this tag.

var plantedDeliveries atomic.Uint64

// plantedDrop reports whether this delivery is to be acknowledged and not
// stored. The log line is how the test tells "the hook in Deliver is
// missing" from "the checker cannot see a loss".
func plantedDrop() bool {
	n := plantedDeliveries.Add(1)
	if n%10 != 0 {
		return false
	}
	slog.Default().Warn("faultdrop: planted fault acknowledges a delivery without proposing it", "component", "mail", "delivery", n)
	return true
}

// fakeDeliveries is a successful outcome for every recipient of env.
func fakeDeliveries(env Envelope) []Delivery {
	return make([]Delivery, len(env.To))
}
