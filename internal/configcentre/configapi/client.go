package configapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/vigil-observability/vigil/internal/configcentre"
)

// Client calls a server's configuration centre API (vigil config).
type Client struct {
	// URL is the server's base URL.
	URL string
	// HTTP: nil, http.DefaultClient.
	HTTP *http.Client
	// Author and Message go with every write.
	Author, Message string
}

// ParseItem reads "namespace/group/key".
func ParseItem(s string) (configcentre.Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return configcentre.Key{}, fmt.Errorf("item %q: want namespace/group/key", s)
	}
	k := configcentre.Key{Namespace: parts[0], Group: parts[1], Key: parts[2]}
	return k, k.Validate()
}

func (c *Client) itemURL(k configcentre.Key, suffix string, q url.Values) string {
	u := strings.TrimRight(c.URL, "/") + ConfigPrefix + url.PathEscape(k.Namespace) + "/" + url.PathEscape(k.Group) + "/" + url.PathEscape(k.Key) + suffix
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// do sends the request and decodes the envelope's data into out.
func (c *Client) do(ctx context.Context, method, u, contentType string, body []byte, write bool, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if write {
		if c.Author != "" {
			req.Header.Set(AuthorHeader, c.Author)
		}
		if c.Message != "" {
			req.Header.Set(MessageHeader, c.Message)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if resp.StatusCode != http.StatusOK || env.Status != "success" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// Get returns the value the instance should use.
func (c *Client) Get(ctx context.Context, k configcentre.Key, instance string, labels map[string]string) (configcentre.Resolved, error) {
	q := url.Values{}
	if instance != "" {
		q.Set("instance", instance)
	}
	for n, v := range labels {
		q.Set("label."+n, v)
	}
	var r configcentre.Resolved
	err := c.do(ctx, http.MethodGet, c.itemURL(k, "", q), "", nil, false, &r)
	return r, err
}

// MediaType is the Content-Type a put of t sends.
func MediaType(t configcentre.ContentType) string {
	switch t {
	case configcentre.TypeJSON:
		return "application/json"
	case configcentre.TypeYAML:
		return "application/yaml"
	}
	return "text/plain"
}

// Put publishes content as a new formal version.
func (c *Client) Put(ctx context.Context, k configcentre.Key, t configcentre.ContentType, content []byte) (configcentre.Result, error) {
	var r configcentre.Result
	err := c.do(ctx, http.MethodPut, c.itemURL(k, "", nil), MediaType(t), content, true, &r)
	return r, err
}

// Gray starts a gray rollout.
func (c *Client) Gray(ctx context.Context, k configcentre.Key, g GrayRequest) (configcentre.Result, error) {
	body, err := json.Marshal(g)
	if err != nil {
		return configcentre.Result{}, err
	}
	var r configcentre.Result
	err = c.do(ctx, http.MethodPost, c.itemURL(k, "/gray", nil), "application/json", body, true, &r)
	return r, err
}

// Promote makes the active gray the formal version.
func (c *Client) Promote(ctx context.Context, k configcentre.Key) (configcentre.Result, error) {
	var r configcentre.Result
	err := c.do(ctx, http.MethodPost, c.itemURL(k, "/gray/promote", nil), "", nil, true, &r)
	return r, err
}

// Abort ends the active gray.
func (c *Client) Abort(ctx context.Context, k configcentre.Key) (configcentre.Result, error) {
	var r configcentre.Result
	err := c.do(ctx, http.MethodPost, c.itemURL(k, "/gray/abort", nil), "", nil, true, &r)
	return r, err
}

// Rollback republishes version as a new formal version.
func (c *Client) Rollback(ctx context.Context, k configcentre.Key, version uint64) (configcentre.Result, error) {
	var r configcentre.Result
	q := url.Values{"version": {strconv.FormatUint(version, 10)}}
	err := c.do(ctx, http.MethodPost, c.itemURL(k, "/rollback", q), "", nil, true, &r)
	return r, err
}

// History returns the item's versions, newest first.
func (c *Client) History(ctx context.Context, k configcentre.Key) ([]HistoryVersion, error) {
	var h []HistoryVersion
	err := c.do(ctx, http.MethodGet, c.itemURL(k, "/history", nil), "", nil, false, &h)
	return h, err
}

// SetSchema sets the item's JSON Schema (PUT .../schema).
func (c *Client) SetSchema(ctx context.Context, k configcentre.Key, schema []byte) (configcentre.Result, error) {
	var r configcentre.Result
	err := c.do(ctx, http.MethodPut, c.itemURL(k, "/schema", nil), "application/schema+json", schema, true, &r)
	return r, err
}

// DeleteSchema removes the item's schema (DELETE .../schema).
func (c *Client) DeleteSchema(ctx context.Context, k configcentre.Key) (configcentre.Result, error) {
	var r configcentre.Result
	err := c.do(ctx, http.MethodDelete, c.itemURL(k, "/schema", nil), "", nil, true, &r)
	return r, err
}

// Schema returns the item's schema (GET .../schema).
func (c *Client) Schema(ctx context.Context, k configcentre.Key) (json.RawMessage, error) {
	var out struct {
		Schema json.RawMessage `json:"schema"`
	}
	err := c.do(ctx, http.MethodGet, c.itemURL(k, "/schema", nil), "", nil, false, &out)
	return out.Schema, err
}
