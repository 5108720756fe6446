package imapd

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallelAttemptsAreCountedBeforeTheCheck: 50 attempts from one
// address start at once; only max of them get to a password check, because
// each counts as a failure from its start.
func TestParallelAttemptsAreCountedBeforeTheCheck(t *testing.T) {
	th := newAuthThrottle(time.Millisecond, time.Millisecond, 5, time.Minute)
	now := time.Now()
	var admitted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if th.begin("192.0.2.1", now) {
				admitted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != 5 {
		t.Fatalf("%d parallel attempts reached the password check, want 5", got)
	}
	// Another address is not affected.
	if !th.begin("192.0.2.2", now) {
		t.Fatal("an unrelated address was refused")
	}
	// A success forgets the address's failures.
	th.succeeded("192.0.2.1")
	for i := 0; i < 5; i++ {
		if !th.begin("192.0.2.1", now) {
			t.Fatalf("attempt %d after a success refused", i+1)
		}
	}
	if th.begin("192.0.2.1", now) {
		t.Fatal("a sixth attempt in the window was allowed")
	}
	// The window passes: allowed again.
	if !th.begin("192.0.2.1", now.Add(2*time.Minute)) {
		t.Fatal("still refused after the window")
	}
}
