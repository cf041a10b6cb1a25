package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-openapi/strfmt"
	v2 "github.com/prometheus/alertmanager/api/v2"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// InternalSilencesPath is where a node takes silence writes forwarded by
// followers (Replicator.InternalHandler). It is node-to-node only: the
// wiring must give it the same authorisation as a silence write.
const InternalSilencesPath = "/internal/alerting/silences"

// InternalReadIndexPath is where a leader gives followers the read index
// for a linearizable silence read (Replicator.InternalReadIndexHandler).
// It is node-to-node only: the wiring must give it the same authorisation
// as a silence read.
const InternalReadIndexPath = "/internal/alerting/read-index"

// ErrNoLeaderAPI: the leader is known but not how to reach its API.
var ErrNoLeaderAPI = errors.New("alerting: leader's API address unknown")

// ErrLeaderUnavailable: the leader could not take a forwarded write now
// (it answered "retry later", or could not be reached, as when it has just
// died); the write was not acknowledged, and a retry finds the next leader.
var ErrLeaderUnavailable = errors.New("alerting: the leader could not take the write; retry")

// maxSilenceBody bounds a silence write's body; Alertmanager's own limit on
// a silence is far below it.
const maxSilenceBody = 1 << 20

// Forwarder sends a silence write to the leader, which commits it, and
// returns once the leader has. Implementations must be safe for concurrent
// use.
type Forwarder interface {
	Forward(ctx context.Context, leader *consensus.NotLeaderError, op SilenceOp) (SilenceWrite, error)
}

// ReadIndexForwarder asks the leader for a read index (the leader's
// consensus.ReadIndexer.ReadIndex), for a follower that cannot tell it
// itself. A Forwarder may implement it; implementations must be safe for
// concurrent use.
type ReadIndexForwarder interface {
	ReadIndex(ctx context.Context, leader *consensus.NotLeaderError) (uint64, error)
}

// Handler wraps the Alertmanager API handler: silence creations and
// expiries (POST /api/v2/silences, DELETE /api/v2/silence/{id}) are
// committed to the cluster's log before the response; silence reads (GET
// /api/v2/silences, GET /api/v2/silence/{id}) pass ReadBarrier first, so
// that they are served from this node's copy only once it holds every
// write acknowledged before them, and answer 503 when that cannot be
// known; everything else goes to next as it is.
func (r *Replicator) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := strings.TrimRight(req.URL.Path, "/")
		switch {
		case (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
			(strings.HasSuffix(path, "/api/v2/silences") || strings.Contains(path, "/api/v2/silence/")):
			if err := r.ReadBarrier(req.Context()); err != nil {
				// Long enough for an election to end, or a lagging node to
				// catch up.
				w.Header().Set("Retry-After", "1")
				writeSilenceError(w, err)
				return
			}
			next.ServeHTTP(w, req)
		case req.Method == http.MethodPost && strings.HasSuffix(path, "/api/v2/silences"):
			r.servePost(w, req)
		case req.Method == http.MethodDelete && strings.Contains(path, "/api/v2/silence/"):
			id := path[strings.LastIndex(path, "/")+1:]
			if _, err := r.Do(req.Context(), SilenceOp{ExpireID: id}); err != nil {
				writeSilenceError(w, err)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

func (r *Replicator) servePost(w http.ResponseWriter, req *http.Request) {
	sil, err := decodePostableSilence(io.LimitReader(req.Body, maxSilenceBody))
	if err != nil {
		writeSilenceError(w, err)
		return
	}
	res, err := r.Do(req.Context(), SilenceOp{Silence: sil})
	if err != nil {
		writeSilenceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"silenceID": res.ID})
}

// decodePostableSilence checks a body as Alertmanager's API does before it
// calls Set.
func decodePostableSilence(r io.Reader) (*silencepb.Silence, error) {
	var ps models.PostableSilence
	if err := json.NewDecoder(r).Decode(&ps); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSilence, err)
	}
	if err := ps.Validate(strfmt.Default); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSilence, err)
	}
	sil, err := v2.PostableSilenceToProto(&ps)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSilence, err)
	}
	if !sil.StartsAt.AsTime().Before(sil.EndsAt.AsTime()) {
		return nil, fmt.Errorf("%w: start time must be before end time", ErrInvalidSilence)
	}
	if sil.EndsAt.AsTime().Before(time.Now()) {
		return nil, fmt.Errorf("%w: end time can't be in the past", ErrInvalidSilence)
	}
	return sil, nil
}

// silenceStatus is the HTTP status for a failed silence write; a
// NotLeaderError reaching a client means no leader could take the write
// (none known, or no Forwarder), which is worth a retry.
func silenceStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalidSilence):
		return http.StatusBadRequest
	case errors.Is(err, silence.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrLeadershipLost), errors.Is(err, consensus.ErrUnavailable),
		errors.Is(err, ErrNoLeaderAPI), errors.Is(err, ErrLeaderUnavailable), errors.Is(err, ErrReadUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// writeSilenceError answers as Alertmanager's API does: the message as a
// JSON string.
func writeSilenceError(w http.ResponseWriter, err error) {
	writeJSON(w, silenceStatus(err), err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// forwardedOp is a SilenceOp on the wire between nodes.
type forwardedOp struct {
	Silence  json.RawMessage `json:"silence,omitempty"` // protojson of silencepb.Silence
	ExpireID string          `json:"expire_id,omitempty"`
}

type forwardedResult struct {
	ID        string    `json:"id"`
	UpdatedAt time.Time `json:"updated_at"`
	Index     uint64    `json:"index,omitempty"`
	Error     string    `json:"error,omitempty"`
	// LeaderID is set when the node asked is not the leader either.
	LeaderID string `json:"leader_id,omitempty"`
}

// InternalHandler takes writes forwarded by followers, on
// InternalSilencesPath. It does not forward again: a node that lost
// leadership in between answers 421 naming the leader it knows, and the
// follower's client decides, so a write never circles between nodes.
func (r *Replicator) InternalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var fo forwardedOp
		if err := json.NewDecoder(io.LimitReader(req.Body, maxSilenceBody)).Decode(&fo); err != nil {
			writeJSON(w, http.StatusBadRequest, forwardedResult{Error: err.Error()})
			return
		}
		op := SilenceOp{ExpireID: fo.ExpireID}
		if len(fo.Silence) > 0 {
			op.Silence = &silencepb.Silence{}
			if err := protojson.Unmarshal(fo.Silence, op.Silence); err != nil {
				writeJSON(w, http.StatusBadRequest, forwardedResult{Error: err.Error()})
				return
			}
		}
		res, err := r.DoLocal(req.Context(), op)
		var nl *consensus.NotLeaderError
		switch {
		case errors.As(err, &nl):
			writeJSON(w, http.StatusMisdirectedRequest, forwardedResult{Error: err.Error(), LeaderID: nl.LeaderID})
		case err != nil:
			writeJSON(w, silenceStatus(err), forwardedResult{Error: err.Error()})
		default:
			out := forwardedResult{ID: res.ID, UpdatedAt: res.UpdatedAt}
			// Read after the write was applied here, so at or after it.
			if ai, ok := r.opts.Log.(appliedIndexer); ok {
				out.Index = ai.AppliedIndex()
			}
			writeJSON(w, http.StatusOK, out)
		}
	})
}

type readIndexResult struct {
	Index    uint64 `json:"index"`
	Error    string `json:"error,omitempty"`
	LeaderID string `json:"leader_id,omitempty"`
}

// InternalReadIndexHandler gives followers this node's read index, on
// InternalReadIndexPath, while it leads. Like InternalHandler it does not
// ask another node: one that does not lead answers 421 naming the leader
// it knows, and the follower's read fails (a client retries).
func (r *Replicator) InternalReadIndexHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rd, ok := r.opts.Log.(consensus.ReadIndexer)
		if !ok {
			writeJSON(w, http.StatusNotImplemented, readIndexResult{Error: "this node's consensus backend has no read index"})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), r.opts.ReadTimeout)
		defer cancel()
		index, err := rd.ReadIndex(ctx)
		var nl *consensus.NotLeaderError
		switch {
		case errors.As(err, &nl):
			writeJSON(w, http.StatusMisdirectedRequest, readIndexResult{Error: err.Error(), LeaderID: nl.LeaderID})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, readIndexResult{Error: err.Error()})
		default:
			writeJSON(w, http.StatusOK, readIndexResult{Index: index})
		}
	})
}

// HTTPForwarder forwards to the leader's InternalHandler over HTTP. The
// consensus layer names the leader by node id only (its address is the
// consensus one), so the API addresses are configuration.
type HTTPForwarder struct {
	// APIURLs maps a node id to the base URL of that node's vigil API.
	APIURLs map[string]string
	// Client carries the TLS and credentials node-to-node calls need;
	// nil: http.DefaultClient.
	Client *http.Client
	// Authorize, when set, adds credentials to each forwarded request,
	// from the context of the write being forwarded: the internal
	// endpoint is behind the same authentication as a silence write, so
	// the caller's own credentials, valid on every node, can carry it.
	Authorize func(ctx context.Context, req *http.Request)
}

var _ Forwarder = (*HTTPForwarder)(nil)

// errForwardStatus wraps an answer the leader gave that has no sentinel.
var errForwardStatus = errors.New("alerting: forwarded silence write failed")

var _ ReadIndexForwarder = (*HTTPForwarder)(nil)

// request builds a request to path on the leader's API, with the
// credentials of the call it is made for.
func (f *HTTPForwarder) request(ctx context.Context, leader *consensus.NotLeaderError, method, path string, body io.Reader) (*http.Request, error) {
	if leader.LeaderID == "" {
		return nil, leader
	}
	base, ok := f.APIURLs[leader.LeaderID]
	if !ok {
		return nil, fmt.Errorf("%w: node %q", ErrNoLeaderAPI, leader.LeaderID)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.Authorize != nil {
		f.Authorize(ctx, req)
	}
	return req, nil
}

func (f *HTTPForwarder) client() *http.Client {
	if f.Client == nil {
		return http.DefaultClient
	}
	return f.Client
}

// ReadIndex implements ReadIndexForwarder.
func (f *HTTPForwarder) ReadIndex(ctx context.Context, leader *consensus.NotLeaderError) (uint64, error) {
	req, err := f.request(ctx, leader, http.MethodGet, InternalReadIndexPath, nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: read index from %s: %w", ErrLeaderUnavailable, leader.LeaderID, err)
	}
	defer resp.Body.Close()
	var res readIndexResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSilenceBody)).Decode(&res); err != nil {
		return 0, fmt.Errorf("%w: read index from %s: status %d: %w", ErrLeaderUnavailable, leader.LeaderID, resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return res.Index, nil
	case http.StatusMisdirectedRequest:
		return 0, &consensus.NotLeaderError{LeaderID: res.LeaderID}
	default:
		return 0, fmt.Errorf("%w: read index from %s: status %d: %s", ErrLeaderUnavailable, leader.LeaderID, resp.StatusCode, res.Error)
	}
}

// Forward implements Forwarder.
func (f *HTTPForwarder) Forward(ctx context.Context, leader *consensus.NotLeaderError, op SilenceOp) (SilenceWrite, error) {
	fo := forwardedOp{ExpireID: op.ExpireID}
	if op.Silence != nil {
		b, err := protojson.Marshal(op.Silence)
		if err != nil {
			return SilenceWrite{}, err
		}
		fo.Silence = b
	}
	body, err := json.Marshal(fo)
	if err != nil {
		return SilenceWrite{}, err
	}
	req, err := f.request(ctx, leader, http.MethodPost, InternalSilencesPath, bytes.NewReader(body))
	if err != nil {
		return SilenceWrite{}, err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return SilenceWrite{}, fmt.Errorf("%w: forward silence write to %s: %w", ErrLeaderUnavailable, leader.LeaderID, err)
	}
	defer resp.Body.Close()
	var res forwardedResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSilenceBody)).Decode(&res); err != nil {
		return SilenceWrite{}, fmt.Errorf("alerting: forward silence write to %s: status %d: %w", leader.LeaderID, resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return SilenceWrite{ID: res.ID, UpdatedAt: res.UpdatedAt, Index: res.Index}, nil
	case http.StatusMisdirectedRequest:
		return SilenceWrite{}, &consensus.NotLeaderError{LeaderID: res.LeaderID}
	case http.StatusBadRequest:
		return SilenceWrite{}, fmt.Errorf("%w: %s", ErrInvalidSilence, res.Error)
	case http.StatusNotFound:
		return SilenceWrite{}, fmt.Errorf("%w: %s", silence.ErrNotFound, res.Error)
	case http.StatusServiceUnavailable:
		return SilenceWrite{}, fmt.Errorf("%w: %s: %s", ErrLeaderUnavailable, leader.LeaderID, res.Error)
	default:
		return SilenceWrite{}, fmt.Errorf("%w: %s: status %d: %s", errForwardStatus, leader.LeaderID, resp.StatusCode, res.Error)
	}
}
