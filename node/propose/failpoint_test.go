//go:build failpoints

package propose

import (
	"context"
	"errors"
	"testing"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

// propose/forward: the leader took the command and its answer is lost; the
// caller must see an unknown outcome (and retry with its dedupe key), never
// a refusal that claims nothing was proposed, and Propose must not retry.
func TestFailpointForwardLosesTheAnswer(t *testing.T) {
	restore, err := failpoint.Set(failpoint.ProposeForward, "every(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	p, _, fw, _ := setup("n2")
	_, _, err = p.Propose(context.Background(), domainAdd(), Committed)
	if !errors.Is(err, consensus.ErrUnknownOutcome) || !errors.Is(err, failpoint.ErrInjected) || len(fw.sent) != 1 {
		t.Fatalf("Propose = %v after %d sends; want the injected unknown outcome after one", err, len(fw.sent))
	}
}
