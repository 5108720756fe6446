//go:build !faultdrop

package mail

// plantedDrop is the switch of the planted fault in fault_drop.go (build
// tag faultdrop); off in every ordinary build.
func plantedDrop() bool { return false }

// fakeDeliveries is never reached without the faultdrop tag.
func fakeDeliveries(env Envelope) []Delivery { return nil }
