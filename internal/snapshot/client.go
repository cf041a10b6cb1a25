package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Client calls a server's snapshot API, for `vigil snapshot`.
type Client struct {
	// URL is the server's base URL.
	URL  string
	HTTP *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

// Take asks the server for a snapshot of req.Service and returns its
// manifest.
func (c *Client) Take(ctx context.Context, req Request) (Manifest, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Manifest{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, Path, b)
	if err != nil {
		return Manifest{}, err
	}
	defer resp.Body.Close()
	var m Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("decoding the manifest: %w", err)
	}
	return m, nil
}

// List returns the stored bundles, newest first.
func (c *Client) List(ctx context.Context) ([]Manifest, error) {
	resp, err := c.do(ctx, http.MethodGet, Path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l struct{ Snapshots []Manifest }
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("decoding the list: %w", err)
	}
	return l.Snapshots, nil
}

// Get copies bundle id's tar.gz to w and returns its size.
func (c *Client) Get(ctx context.Context, id string, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, Path+"/"+url.PathEscape(id), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// WriteSummary writes what a capture got, one line per instance.
func WriteSummary(w io.Writer, m Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "snapshot %s of %s: %d of %d instances answered; %d traces, %d logs, %d firing alerts (%s to %s)\n",
		m.ID, m.Service, m.Answered, len(m.Instances), m.Traces, m.Logs, m.Alerts,
		m.From.UTC().Format(time.TimeOnly), m.To.UTC().Format(time.TimeOnly))
	fmt.Fprintln(tw, "INSTANCE\tSOURCE\tSTATUS\tSECONDS\tREASON")
	for _, in := range m.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\n", in.ID, in.Source, in.Status, in.Seconds, in.Error)
	}
	for _, e := range m.Errors {
		fmt.Fprintf(tw, "not read from vigil's stores: %s\n", e)
	}
	return tw.Flush()
}

// WriteList writes the bundles as a table.
func WriteList(w io.Writer, ms []Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSERVICE\tTAKEN\tANSWERED\tBYTES")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\n", m.ID, m.Service, m.Started.UTC().Format(time.RFC3339), m.Answered, len(m.Instances), m.Bytes)
	}
	return tw.Flush()
}
