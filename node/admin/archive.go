package admin

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/commandpb"
)

// actor is the audit identity of a request: the subject of the client
// certificate the TLS handshake verified, else mail.LocalAdmin. It is a
// plain string so that the admin-certificate work can refine it (a SAN, a
// role) without touching the log format.
func actor(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return mail.LocalAdmin
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		var cert *x509.Certificate
		if len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			cert = ti.State.VerifiedChains[0][0]
		}
		if cert != nil {
			if cn := cert.Subject.CommonName; cn != "" {
				return "cert:" + cn
			}
			return "cert:" + cert.Subject.String()
		}
	}
	return mail.LocalAdmin
}

// audit returns ctx marked with the caller's identity: every write under
// it is recorded in the audit log.
func audit(ctx context.Context) context.Context { return mail.WithActor(ctx, actor(ctx)) }

func (s *Service) RetentionSet(ctx context.Context, req *adminpb.RetentionSetRequest) (*adminpb.RetentionSetResponse, error) {
	return &adminpb.RetentionSetResponse{}, toStatus(s.mail.SetRetention(audit(ctx), req.Domain, req.User, req.Days))
}

func (s *Service) RetentionRun(ctx context.Context, _ *adminpb.RetentionRunRequest) (*adminpb.RetentionRunResponse, error) {
	removed, entries, err := s.mail.RunRetention(audit(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.RetentionRunResponse{Removed: removed, Entries: uint64(entries)}, nil
}

func (s *Service) RetentionList(ctx context.Context, _ *adminpb.RetentionListRequest) (*adminpb.RetentionListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	sum, err := s.mail.Summary(time.Now().Unix())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.RetentionListResponse{Messages: sum.Messages, HeldMessages: sum.Held, VaultedMessages: sum.Vaulted, DueMessages: sum.Due}
	if sum.NextExpiry != math.MaxInt64 {
		out.NextExpiryUnixMs = sum.NextExpiry * 1000
	}
	for _, p := range sum.Policies {
		out.Policies = append(out.Policies, &adminpb.RetentionPolicy{Scope: p.Scope, Days: p.Days, SetUnixMs: p.SetUnixNano / 1e6})
	}
	return out, nil
}

func (s *Service) HoldPlace(ctx context.Context, req *adminpb.HoldPlaceRequest) (*adminpb.HoldPlaceResponse, error) {
	return &adminpb.HoldPlaceResponse{}, toStatus(s.mail.PlaceHold(audit(ctx), req.Domain, req.User, req.Reason))
}

func (s *Service) HoldRelease(ctx context.Context, req *adminpb.HoldReleaseRequest) (*adminpb.HoldReleaseResponse, error) {
	return &adminpb.HoldReleaseResponse{}, toStatus(s.mail.ReleaseHold(audit(ctx), req.Domain, req.User))
}

func (s *Service) HoldList(ctx context.Context, _ *adminpb.HoldListRequest) (*adminpb.HoldListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	sum, err := s.mail.Summary(time.Now().Unix())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.HoldListResponse{}
	for _, h := range sum.Holds {
		out.Holds = append(out.Holds, &adminpb.Hold{Scope: h.Scope, Reason: h.Reason, PlacedBy: h.PlacedBy,
			PlacedUnixMs: h.PlacedUnixNano / 1e6, PlacedIndex: h.PlacedIndex, Messages: sum.HeldByHold[h.Scope]})
	}
	return out, nil
}

// ArchiveVerify recomputes the journal on this node, as it stands: no
// read-index wait, so a node cut off from the others can still be checked.
func (s *Service) ArchiveVerify(ctx context.Context, _ *adminpb.ArchiveVerifyRequest) (*adminpb.ArchiveVerifyResponse, error) {
	rep, applied, err := s.mail.VerifyJournal()
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.ArchiveVerifyResponse{NodeId: s.cluster.Local().Id, Ok: rep.OK(), Links: rep.Links, HeadIndex: rep.HeadIndex,
		BreakIndex: rep.BreakIndex, Reason: rep.Reason, AppliedIndex: applied, BlobsChecked: rep.BlobsChecked}, nil
}

func searchQuery(req *adminpb.ArchiveSearchRequest) mail.SearchQuery {
	return mail.SearchQuery{Query: req.Query, User: req.User, From: req.FromUnix, To: req.ToUnix, IncludeHeld: req.IncludeHeld, Limit: int(req.Limit), Scan: req.Scan}
}

func describeSearch(req *adminpb.ArchiveSearchRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "query=%q", req.Query)
	if req.User != "" {
		fmt.Fprintf(&b, " user=%s", req.User)
	}
	if req.FromUnix != 0 {
		fmt.Fprintf(&b, " from=%s", time.Unix(req.FromUnix, 0).UTC().Format(time.DateOnly))
	}
	if req.ToUnix != 0 {
		fmt.Fprintf(&b, " to=%s", time.Unix(req.ToUnix, 0).UTC().Format(time.DateOnly))
	}
	if req.IncludeHeld {
		b.WriteString(" include-held")
	}
	return b.String()
}

func hitPB(h mail.Hit) *adminpb.ArchiveHit {
	return &adminpb.ArchiveHit{User: h.User, Mailbox: h.Mailbox, Uid: h.UID, InternalDateUnix: h.InternalDate, Subject: h.Subject,
		From: h.From, Sha256: hex.EncodeToString(h.SHA256), Size: h.Size, Vaulted: h.Vaulted, Held: h.Held, MessageId: h.MID}
}

// ArchiveSearch records the search in the audit log, then runs it: a search
// that could not be recorded is not run.
func (s *Service) ArchiveSearch(ctx context.Context, req *adminpb.ArchiveSearchRequest) (*adminpb.ArchiveSearchResponse, error) {
	if req.Query == "" {
		return nil, toStatus(fmt.Errorf("%w: --query is required", mail.ErrInvalid))
	}
	idx, err := s.mail.Audit(audit(ctx), "archive search", describeSearch(req))
	if err != nil {
		return nil, toStatus(err)
	}
	hits, scanned, truncated, err := s.mail.Search(ctx, searchQuery(req))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.ArchiveSearchResponse{AuditIndex: idx, Scanned: scanned, Truncated: truncated}
	for _, h := range hits {
		out.Hits = append(out.Hits, hitPB(h))
	}
	return out, nil
}

// exportChunkBytes is the message data one ArchiveExportChunk carries.
const exportChunkBytes = 1 << 20

// ArchiveExport records the export in the audit log, then streams every
// message the search finds: a chunk with the hit, its bytes in pieces, and
// a last chunk with done set.
func (s *Service) ArchiveExport(req *adminpb.ArchiveSearchRequest, stream grpc.ServerStreamingServer[adminpb.ArchiveExportChunk]) error {
	ctx := stream.Context()
	if req.Query == "" {
		return toStatus(fmt.Errorf("%w: --query is required", mail.ErrInvalid))
	}
	idx, err := s.mail.Audit(audit(ctx), "archive export", describeSearch(req))
	if err != nil {
		return toStatus(err)
	}
	hits, _, _, err := s.mail.Search(ctx, searchQuery(req))
	if err != nil {
		return toStatus(err)
	}
	for _, h := range hits {
		data, err := s.mail.Blob(h.SHA256)
		if err != nil {
			return toStatus(fmt.Errorf("export %s %s/%d: %w", h.User, h.Mailbox, h.UID, err))
		}
		first := &adminpb.ArchiveExportChunk{Hit: hitPB(h)}
		for first != nil || len(data) > 0 {
			c := first
			if c == nil {
				c = &adminpb.ArchiveExportChunk{}
			}
			first = nil
			n := min(len(data), exportChunkBytes)
			c.Data, data = data[:n], data[n:]
			if err := stream.Send(c); err != nil {
				return err
			}
		}
	}
	return stream.Send(&adminpb.ArchiveExportChunk{Done: true, AuditIndex: idx})
}

func (s *Service) AuditList(ctx context.Context, req *adminpb.AuditListRequest) (*adminpb.AuditListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	entries, err := s.mail.AuditEntries(int(req.Limit))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.AuditListResponse{}
	for _, e := range entries {
		outcome := "ok"
		if c := commandpb.Code(e.Code); c != commandpb.Code_CODE_OK {
			outcome = strings.ToLower(strings.TrimPrefix(c.String(), "CODE_"))
			if e.Message != "" {
				outcome += ": " + e.Message
			}
		}
		out.Entries = append(out.Entries, &adminpb.AuditEntry{Index: e.Index, TimeUnixMs: e.TimeUnixNano / 1e6, Actor: e.Actor,
			Action: e.Action, Detail: e.Detail, Outcome: outcome})
	}
	return out, nil
}

func (s *Service) VaultRestore(ctx context.Context, req *adminpb.VaultRestoreRequest) (*adminpb.VaultRestoreResponse, error) {
	n, err := s.mail.RestoreVault(audit(ctx), req.User, req.Mailbox, req.Uid)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.VaultRestoreResponse{Restored: n}, nil
}
