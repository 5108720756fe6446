package admin

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// GossipKeys lists or changes the gossip keyring on every node of the Raft
// configuration (memberlist keyring; continuum cluster keys). A rotation
// is install (every node accepts the new key), use (every node encrypts
// with it), remove (the old key is refused from then on). use is refused
// unless every node has the key installed, so no node is left unable to
// read the others. Each node's answer, or its error, is in the response;
// a node that does not answer keeps its keyring and must be brought in
// line by repeating the operation. Every change is in the audit log.
func (s *Service) GossipKeys(ctx context.Context, req *adminpb.GossipKeysRequest) (*adminpb.GossipKeysResponse, error) {
	var key []byte
	switch req.Op {
	case "list":
		if req.Key != "" {
			return nil, status.Error(codes.InvalidArgument, "admin: keys list takes no key")
		}
	case "install", "use", "remove":
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.Key))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "admin: key is not base64: %v", err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, status.Errorf(codes.InvalidArgument, "admin: key is %d bytes, want 16, 24 or 32", n)
		}
		key = k
	default:
		return nil, status.Errorf(codes.InvalidArgument, "admin: unknown keys operation %q (want list, install, use or remove)", req.Op)
	}
	servers, err := s.cluster.Servers()
	if err != nil {
		return nil, toStatus(err)
	}
	each := func(op string) *adminpb.GossipKeysResponse {
		out := &adminpb.GossipKeysResponse{}
		for _, srv := range servers {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			r, err := s.cluster.GossipKeys(cctx, srv.ID, &peerpb.GossipKeysRequest{Op: op, Key: key})
			cancel()
			nk := &adminpb.NodeGossipKeys{Id: srv.ID}
			if err != nil {
				nk.Error = status.Convert(err).Message()
			} else {
				nk.Primary, nk.Keys = r.Primary, r.Keys
			}
			out.Nodes = append(out.Nodes, nk)
		}
		return out
	}
	if req.Op == "use" {
		fp := membership.Fingerprint(key)
		var missing []string
		for _, n := range each("list").Nodes {
			if n.Error != "" || !slices.Contains(n.Keys, fp) {
				missing = append(missing, n.Id)
			}
		}
		if len(missing) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition,
				"admin: key %s is not installed on %s: install it on every node first", fp, strings.Join(missing, ", "))
		}
	}
	// A change of the keyring is an admin write: it is recorded in the
	// audit log (with the key's fingerprint, never the key) before any node
	// is asked, and not done if it cannot be recorded.
	if req.Op != "list" {
		if _, err := s.mail.Audit(audit(ctx), "cluster keys "+req.Op, "key "+membership.Fingerprint(key)); err != nil {
			return nil, toStatus(err)
		}
	}
	return each(req.Op), nil
}
