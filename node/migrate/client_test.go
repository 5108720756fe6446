package migrate

import (
	"context"
	"testing"

	"github.com/continuum-mail/continuum/proto/adminpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusingAdmin's Import stream accepts every request and answers the
// first Recv with the node's refusal, as a node does for an unknown user.
type refusingAdmin struct {
	adminpb.AdminClient
	refusal error
}

func (a refusingAdmin) Import(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[adminpb.ImportRequest, adminpb.ImportReply], error) {
	return &refusingStream{ctx: ctx, refusal: a.refusal}, nil
}

type refusingStream struct {
	grpc.ClientStream
	ctx     context.Context
	refusal error
}

func (s *refusingStream) Send(*adminpb.ImportRequest) error { return s.ctx.Err() }
func (s *refusingStream) CloseSend() error                  { return nil }
func (s *refusingStream) Recv() (*adminpb.ImportReply, error) {
	return nil, s.refusal
}

// waitingSource has one mailbox whose messages come only when the import
// is cancelled: its walk then fails with the context's error.
type waitingSource struct{}

func (waitingSource) Mailboxes(context.Context) ([]Mailbox, error) {
	return []Mailbox{{Name: "Quota", Messages: -1, Bytes: -1}}, nil
}

func (waitingSource) Messages(ctx context.Context, _ Mailbox, _ func(*Message) error, _ func(id, reason string)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (waitingSource) Close() error { return nil }

// TestImportReportsTheNodesReason: when the node ends the stream with its
// reason while the client is still reading the source, Import returns
// that reason, not the "context canceled" its own send side then sees
// (a flake of TestImportLargeMessage: "Quota: context canceled, want
// NotFound"). A cancel by the caller still reads as the send side's error.
func TestImportReportsTheNodesReason(t *testing.T) {
	refusal := status.Error(codes.NotFound, "no such user nobody@example.test")
	_, err := Import(context.Background(), refusingAdmin{refusal: refusal}, "nobody@example.test", waitingSource{}, ImportOptions{})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Import: %v, want the node's NotFound", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Import(ctx, refusingAdmin{refusal: status.Error(codes.Canceled, "context canceled")}, "a@example.test", waitingSource{}, ImportOptions{})
	if err == nil || status.Code(err) == codes.NotFound {
		t.Fatalf("Import with a cancelled context: %v, want the cancel", err)
	}
}
