package clusterconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// InternalPath is where the leader takes configurations forwarded by
// followers (Syncer.InternalHandler). Node to node only: the wiring must
// give it the same authorisation as a reload.
const InternalPath = "/internal/cluster/config"

// StatusPath is where a node reports the configuration it runs.
const StatusPath = "/api/v1/cluster/config"

// maxDocBody bounds a forwarded configuration: rule files and an
// alertmanager.yml, far below it.
const maxDocBody = 32 << 20

type forwardedResult struct {
	Result
	Error string `json:"error,omitempty"`
	// LeaderID is set when the node asked is not the leader either.
	LeaderID string `json:"leader_id,omitempty"`
}

// InternalHandler takes configurations forwarded by followers. It does not
// forward again: a node that is no longer the leader answers 421 naming
// the one it knows, so a proposal never circles.
func (s *Syncer) InternalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var d Doc
		if err := json.NewDecoder(io.LimitReader(req.Body, maxDocBody)).Decode(&d); err != nil {
			writeJSON(w, http.StatusBadRequest, forwardedResult{Error: err.Error()})
			return
		}
		res, err := s.ProposeLocal(req.Context(), d)
		var nl *consensus.NotLeaderError
		switch {
		case errors.As(err, &nl):
			writeJSON(w, http.StatusMisdirectedRequest, forwardedResult{Error: err.Error(), LeaderID: nl.LeaderID})
		case err != nil:
			writeJSON(w, internalStatus(err), forwardedResult{Error: err.Error()})
		default:
			writeJSON(w, http.StatusOK, forwardedResult{Result: res})
		}
	})
}

// internalStatus is the status of a forwarded proposal that failed: 400
// for a configuration refused, 503 when this node could not take it (a
// retry may work), 500 otherwise.
func internalStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnavailable), errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrLeadershipLost), errors.Is(err, consensus.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// StatusHandler serves this node's Status, in the API's envelope.
func (s *Syncer) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": s.Status()})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// HTTPForwarder forwards to the leader's InternalHandler.
type HTTPForwarder struct {
	// LeaderURL is the base URL of the leader's API; false when unknown.
	LeaderURL func(leader *consensus.NotLeaderError) (string, bool)
	// Client: nil, http.DefaultClient.
	Client *http.Client
	// Authorize, when set, adds credentials from the reload's context.
	Authorize func(ctx context.Context, req *http.Request)
}

var _ Forwarder = (*HTTPForwarder)(nil)

// Forward implements Forwarder.
func (f *HTTPForwarder) Forward(ctx context.Context, leader *consensus.NotLeaderError, d Doc) (Result, error) {
	base, ok := f.LeaderURL(leader)
	if !ok {
		return Result{}, fmt.Errorf("%w: the API address of leader %q is unknown", ErrUnavailable, leader.LeaderID)
	}
	body, err := json.Marshal(d)
	if err != nil {
		return Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+InternalPath, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
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
		return Result{}, fmt.Errorf("%w: forward to %s: %w", ErrUnavailable, leader.LeaderID, err)
	}
	defer resp.Body.Close()
	var res forwardedResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocBody)).Decode(&res); err != nil {
		return Result{}, fmt.Errorf("clusterconfig: forward to %s: status %d: %w", leader.LeaderID, resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return res.Result, nil
	case http.StatusMisdirectedRequest:
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, &consensus.NotLeaderError{LeaderID: res.LeaderID})
	case http.StatusBadRequest:
		return Result{}, fmt.Errorf("%w: the leader %s refused it: %s", ErrInvalid, leader.LeaderID, res.Error)
	case http.StatusServiceUnavailable:
		return Result{}, fmt.Errorf("%w: %s: %s", ErrUnavailable, leader.LeaderID, res.Error)
	default:
		return Result{}, fmt.Errorf("clusterconfig: forward to %s: status %d: %s", leader.LeaderID, resp.StatusCode, res.Error)
	}
}
