package clusterapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// StateUnreachable is the state of a member whose own report could not be
// had: its API did not answer in time.
const StateUnreachable = "unreachable"

// localParam asks a node for its own view only: the status with itself
// as the one member it reports on in full.
const localParam = "local"

// askTimeout bounds the wait for a member's own report.
const askTimeout = time.Second

// StatusOptions configures GET /api/v1/cluster.
type StatusOptions struct {
	// Membership is this node's; nil on a single node, which answers 404.
	Membership consensus.Membership
	// APIURL is the base URL of a member's vigil API. When set, each
	// other member's state, indexes and last contact are asked of that
	// member itself, which alone knows them, so that every node gives
	// the same answer; nil: this node's view only.
	APIURL func(id string) (string, bool)
	// Client asks the members; nil: http.DefaultClient.
	Client *http.Client
}

// NewStatusHandler serves GET /api/v1/cluster: the leader and term as this
// node knows them, and every member as it reports itself (see
// StatusOptions.APIURL); a member that does not answer within a second is
// StateUnreachable. With ?local=true, only this node's own view. A single
// node answers 404, since there is no leader or term to report; 503 when
// the membership cannot be read.
func NewStatusHandler(o StatusOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Membership == nil {
			writeError(w, http.StatusNotFound, "not_found", SingleNode, nil)
			return
		}
		st, err := o.Membership.Status(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error(), nil)
			return
		}
		if o.APIURL != nil && r.URL.Query().Get(localParam) != "true" {
			o.fill(r, st.Members)
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": NewStatus(st)})
	})
}

// fill replaces what this node only guesses of the other members with
// their own reports, asked of them at once, with the caller's credentials.
func (o StatusOptions) fill(r *http.Request, members []consensus.Member) {
	ctx, cancel := context.WithTimeout(r.Context(), askTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range members {
		m := &members[i]
		if m.Local {
			continue
		}
		base, ok := o.APIURL(m.ID)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			self, err := o.ask(ctx, base, m.ID, r.Header.Get("Authorization"))
			if err != nil {
				m.State = StateUnreachable
				return
			}
			m.State, m.CommitIndex, m.AppliedIndex = self.State, self.CommitIndex, self.AppliedIndex
			m.LastContact = time.Time{}
			if self.LastContact != nil {
				m.LastContact = *self.LastContact
			}
		}()
	}
	wg.Wait()
}

// ask gets member id's report of itself from its API at base.
func (o StatusOptions) ask(ctx context.Context, base, id, auth string) (Member, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+StatusPath+"?"+localParam+"=true", nil)
	if err != nil {
		return Member{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Member{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Member{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var env struct{ Data Status }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&env); err != nil {
		return Member{}, err
	}
	for _, m := range env.Data.Members {
		if m.ID == id {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%s does not report on itself", base)
}
