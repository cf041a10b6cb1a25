package clusterapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls a vigil server's cluster API.
type Client struct {
	// URL is the server's base URL (http://localhost:7070).
	URL string
	// HTTP sends the requests (credentials, TLS, timeout); nil:
	// http.DefaultClient.
	HTTP *http.Client
	// Redirected, if set, is told when a follower named the leader and a
	// membership change was sent there instead.
	Redirected func(leader, apiURL string)
}

// APIError is an error answer of the API.
type APIError struct {
	StatusCode int
	Type       string
	Message    string
	// NotLeader is set on a not_leader answer.
	NotLeader *NotLeader
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	return e.Message
}

// Status fetches GET /api/v1/cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return c.do(ctx, c.URL, http.MethodGet, StatusPath, nil, false)
}

// Join asks the leader to add the node id at the Raft address addr; a
// follower's not_leader answer that names the leader's API is followed
// once.
func (c *Client) Join(ctx context.Context, id, addr string) (Status, error) {
	body, err := json.Marshal(JoinRequest{ID: id, Address: addr})
	if err != nil {
		return Status{}, err
	}
	return c.do(ctx, c.URL, http.MethodPost, MembersPath, body, true)
}

// Remove asks the leader to take the member id out of the cluster,
// following a follower's answer as Join does.
func (c *Client) Remove(ctx context.Context, id string) (Status, error) {
	return c.do(ctx, c.URL, http.MethodDelete, MembersPath+"/"+url.PathEscape(id), nil, true)
}

func (c *Client) do(ctx context.Context, base, method, path string, body []byte, follow bool) (Status, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return st, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return st, fmt.Errorf("%s %s: %w", method, req.URL, err)
	}
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Status == "" {
		return st, &APIError{StatusCode: resp.StatusCode, Message: fmt.Sprintf("%s %s answered HTTP %d, not the API's JSON: %.200s", method, req.URL, resp.StatusCode, strings.TrimSpace(string(raw)))}
	}
	if env.Status != "success" || resp.StatusCode != http.StatusOK {
		ae := &APIError{StatusCode: resp.StatusCode, Type: env.ErrorType, Message: env.Error}
		if env.ErrorType == ErrorNotLeader && len(env.Data) > 0 {
			var nl NotLeader
			if json.Unmarshal(env.Data, &nl) == nil {
				ae.NotLeader = &nl
			}
		}
		if follow && ae.NotLeader != nil && ae.NotLeader.LeaderAPIURL != "" {
			if c.Redirected != nil {
				c.Redirected(ae.NotLeader.Leader, ae.NotLeader.LeaderAPIURL)
			}
			// Once: a leader that moved again is reported, not chased.
			return c.do(ctx, ae.NotLeader.LeaderAPIURL, method, path, body, false)
		}
		return st, ae
	}
	if err := json.Unmarshal(env.Data, &st); err != nil {
		return st, fmt.Errorf("%s %s: data is not a cluster status: %w", method, req.URL, err)
	}
	return st, nil
}
