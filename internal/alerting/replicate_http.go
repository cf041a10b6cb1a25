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

// Handler wraps the Alertmanager API handler: silence creations and
// expiries (POST /api/v2/silences, DELETE /api/v2/silence/{id}) are
// committed to the cluster's log before the response; everything else,
// reads included, goes to next and is served from this node's copy.
func (r *Replicator) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := strings.TrimRight(req.URL.Path, "/")
		switch {
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
		errors.Is(err, ErrNoLeaderAPI), errors.Is(err, ErrLeaderUnavailable):
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
			writeJSON(w, http.StatusOK, forwardedResult{ID: res.ID, UpdatedAt: res.UpdatedAt})
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

// Forward implements Forwarder.
func (f *HTTPForwarder) Forward(ctx context.Context, leader *consensus.NotLeaderError, op SilenceOp) (SilenceWrite, error) {
	if leader.LeaderID == "" {
		return SilenceWrite{}, leader
	}
	base, ok := f.APIURLs[leader.LeaderID]
	if !ok {
		return SilenceWrite{}, fmt.Errorf("%w: node %q", ErrNoLeaderAPI, leader.LeaderID)
	}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+InternalSilencesPath, bytes.NewReader(body))
	if err != nil {
		return SilenceWrite{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if f.Authorize != nil {
		f.Authorize(ctx, req)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
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
		return SilenceWrite{ID: res.ID, UpdatedAt: res.UpdatedAt}, nil
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
