package clusterapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// MembersOptions configures the membership change endpoints.
type MembersOptions struct {
	// Membership is this node's; nil on a single node, which answers 404.
	Membership consensus.Membership
	// APIURLs maps a member's id to the base URL of its vigil API, to name
	// the leader's in a follower's answer; nil or a missing id: the answer
	// names the leader by id only.
	APIURLs map[string]string
}

// maxJoinBody bounds a join request's body: two short strings.
const maxJoinBody = 64 << 10

// JoinHandler serves POST /api/v1/cluster/members: it adds the node the
// JSON body names (JoinRequest) as a voter and answers the cluster's
// status after the change. Only the leader changes membership: a follower
// answers 421 not_leader naming the leader (it does not forward, so that
// the caller sees, and its credentials reach, the node that acts).
func JoinHandler(o MembersOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Membership == nil {
			writeError(w, http.StatusNotFound, "not_found", SingleNode, nil)
			return
		}
		var req JoinRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("the body must be JSON {\"id\": ..., \"address\": \"host:port\"}: %v", err), nil)
			return
		}
		if req.ID == "" {
			writeError(w, http.StatusBadRequest, "bad_data", "id is empty: give the new node's cluster.node_id", nil)
			return
		}
		if _, _, err := net.SplitHostPort(req.Address); err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("address %q is not the new node's Raft host:port: %v", req.Address, err), nil)
			return
		}
		err := o.Membership.Join(r.Context(), consensus.Peer{ID: req.ID, Address: req.Address})
		o.answer(w, r.Context(), fmt.Sprintf("join %s at %s", req.ID, req.Address), err)
	})
}

// RemoveHandler serves DELETE /api/v1/cluster/members/{id}: it takes the
// member out of the cluster and answers the cluster's status after the
// change; 404 for an id the leader does not list. A follower answers as
// JoinHandler's does.
func RemoveHandler(o MembersOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Membership == nil {
			writeError(w, http.StatusNotFound, "not_found", SingleNode, nil)
			return
		}
		id := r.PathValue("id")
		if id == "" {
			writeError(w, http.StatusBadRequest, "bad_data", "no member id in the path", nil)
			return
		}
		st, err := o.Membership.Status(r.Context())
		if err != nil {
			o.answer(w, r.Context(), "remove "+id, err)
			return
		}
		// Only the leader's view of the membership is current: a follower
		// that has not applied a join yet would call the new member a
		// stranger. It leaves the check, and the change, to the leader.
		leads := slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.Local && m.State == consensus.StateLeader })
		if leads && !slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.ID == id }) {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s is not a member of the cluster", id), nil)
			return
		}
		o.answer(w, r.Context(), "remove "+id, o.Membership.Remove(r.Context(), id))
	})
}

// answer writes the outcome of a membership change: the status after it,
// or the error mapped to an HTTP status and error type.
func (o MembersOptions) answer(w http.ResponseWriter, ctx context.Context, what string, err error) {
	var nl *consensus.NotLeaderError
	switch {
	case err == nil:
	case errors.As(err, &nl):
		data := NotLeader{Leader: nl.LeaderID, LeaderAPIURL: o.APIURLs[nl.LeaderID]}
		msg := fmt.Sprintf("%s: this node is not the leader and no leader is known (an election is under way): try again shortly", what)
		if nl.LeaderID != "" {
			msg = fmt.Sprintf("%s: this node is not the leader: send it to the leader, %s", what, nl.LeaderID)
			if data.LeaderAPIURL != "" {
				msg += " at " + data.LeaderAPIURL
			}
		}
		writeError(w, http.StatusMisdirectedRequest, ErrorNotLeader, msg, data)
		return
	case errors.Is(err, errors.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, ErrorUnsupported, fmt.Sprintf("%s: %v", what, err), nil)
		return
	default:
		writeError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("%s: %v", what, err), nil)
		return
	}
	st, err := o.Membership.Status(ctx)
	if err != nil {
		// The change is made; only the read after it failed.
		writeError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("%s done, but the status after it is unknown: %v", what, err), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": NewStatus(st)})
}

func writeError(w http.ResponseWriter, code int, typ, msg string, data any) {
	body := map[string]any{"status": "error", "errorType": typ, "error": msg}
	if data != nil {
		body["data"] = data
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
