// Package registry registers a service instance with vigil's service
// registry and keeps it there: it registers through the Consul agent API
// vigil serves (PUT /v1/agent/service/register, with a TTL check), sends
// the instance's health as that check's heartbeat, registers again when a
// heartbeat is answered 404 (vigil restarted: its registry is in memory),
// and deregisters on Close. While vigil cannot be reached it retries with
// backoff in its own goroutine; nothing it does blocks the service.
//
// The package speaks only the HTTP API; it never imports vigil's server.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/sdk/health"
)

// Status is a check status as Consul names it.
type Status string

// The statuses a heartbeat sends.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// HealthFunc reports the instance's health at each heartbeat: its status
// and a short output shown beside it. It must honour ctx.
type HealthFunc func(ctx context.Context) (Status, string)

// HealthOf reports the health of h's checks (those /healthz runs):
// passing when all pass, warning when only non-critical ones fail
// (degraded), critical when a critical one fails, with the failing
// checks' errors as the output.
func HealthOf(h *health.Checker) HealthFunc {
	return func(ctx context.Context) (Status, string) {
		rep := h.Check(ctx)
		var failing []string
		for name, c := range rep.Components {
			if c.Status != health.StatusOK {
				failing = append(failing, name+": "+c.Error)
			}
		}
		sort.Strings(failing)
		out := strings.Join(failing, "; ")
		switch rep.Status {
		case health.StatusOK:
			return Passing, ""
		case health.StatusDegraded:
			return Warning, out
		default:
			return Critical, out
		}
	}
}

// Options configures a Client. URL and Service are required.
type Options struct {
	// URL is vigil's web listener, e.g. "http://vigil:7070".
	URL string
	// Service names the service; ID the instance (default: Service).
	Service, ID string
	// Address is where the instance is reached; empty lets vigil take the
	// address the registration came from.
	Address string
	Port    int
	Tags    []string
	// Meta is the instance's metadata; Version, when set, is its
	// "version" (what vigil's scrape labels targets with).
	Meta    map[string]string
	Version string
	// Health reports the status each heartbeat sends; nil is always
	// passing.
	Health HealthFunc
	// TTL is the check's TTL (default 15s): vigil marks the instance
	// critical when no heartbeat comes within it. Heartbeats are sent
	// every Interval (default TTL/3).
	TTL, Interval time.Duration
	// DeregisterAfter is how long the instance may stay critical before
	// vigil removes it (default 1m).
	DeregisterAfter time.Duration
	// BearerToken, when set, is sent as "Authorization: Bearer <token>"
	// (with authentication on, registering needs the ingest role).
	BearerToken string
	// MinBackoff and MaxBackoff bound the wait after a failed request
	// (defaults 1s and 30s); it doubles at each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient sends the requests; nil means a client with a 5s timeout.
	HTTPClient *http.Client
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Client keeps one instance registered until Close.
type Client struct {
	opts    Options
	checkID string
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once

	mu         sync.Mutex
	registered bool
}

// New validates opts and returns a Client; Start begins registering.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("registry: URL %q is not an http(s) URL", opts.URL)
	}
	if opts.Service == "" {
		return nil, errors.New("registry: no service name")
	}
	opts.URL = strings.TrimRight(opts.URL, "/")
	if opts.ID == "" {
		opts.ID = opts.Service
	}
	if opts.TTL <= 0 {
		opts.TTL = 15 * time.Second
	}
	if opts.Interval <= 0 || opts.Interval >= opts.TTL {
		opts.Interval = opts.TTL / 3
	}
	if opts.DeregisterAfter <= 0 {
		opts.DeregisterAfter = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Health == nil {
		opts.Health = func(context.Context) (Status, string) { return Passing, "" }
	}
	return &Client{opts: opts, checkID: "service:" + opts.ID, done: make(chan struct{})}, nil
}

// Start registers in the background and heartbeats until Close. It
// returns at once.
func (c *Client) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.loop(ctx)
}

// Registered reports whether vigil has accepted the registration and the
// last heartbeat did not find it forgotten.
func (c *Client) Registered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registered
}

// Close stops the heartbeats and deregisters the instance, bounded by ctx
// (an unreachable vigil removes it by itself after the TTL and
// DeregisterAfter). It is safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	var err error
	c.once.Do(func() {
		if c.cancel == nil {
			return
		}
		c.cancel()
		<-c.done
		if !c.Registered() {
			return
		}
		err = c.put(ctx, "/v1/agent/service/deregister/"+url.PathEscape(c.opts.ID), nil)
		c.mu.Lock()
		c.registered = false
		c.mu.Unlock()
	})
	return err
}

func (c *Client) loop(ctx context.Context) {
	defer close(c.done)
	backoff := time.Duration(0)
	failing := false
	for {
		err := c.beat(ctx)
		wait := c.opts.Interval
		switch {
		case err != nil && ctx.Err() == nil:
			backoff = min(max(2*backoff, c.opts.MinBackoff), c.opts.MaxBackoff)
			// Spread over the upper half, so instances a restart of vigil
			// cut off together do not come back together; a registered
			// instance keeps to its heartbeat interval, no slower than
			// its steady heartbeats.
			wait = backoff/2 + rand.N(backoff/2+1)
			if c.Registered() {
				wait = min(wait, c.opts.Interval)
			}
			if !failing {
				c.opts.Logger.Warn("vigil registry: cannot reach vigil; retrying", "url", c.opts.URL, "error", err.Error())
			}
			failing = true
		case err == nil:
			if failing {
				c.opts.Logger.Info("vigil registry: registered again", "url", c.opts.URL, "id", c.opts.ID)
			}
			backoff, failing = 0, false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// beat sends one heartbeat, registering first when the instance is not
// (or no longer) registered.
func (c *Client) beat(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, min(c.opts.Interval, 5*time.Second))
	status, output := c.opts.Health(hctx)
	cancel()
	switch status {
	case Passing, Warning, Critical:
	default:
		status = Critical
	}
	c.mu.Lock()
	registered := c.registered
	c.mu.Unlock()
	if registered {
		body, _ := json.Marshal(map[string]string{"Status": string(status), "Output": output})
		err := c.put(ctx, "/v1/agent/check/update/"+url.PathEscape(c.checkID), body)
		if !errors.Is(err, errNotFound) {
			return err
		}
		// vigil forgot the instance (it restarted, or removed it after
		// a long silence): register again.
		c.opts.Logger.Info("vigil registry: vigil forgot this instance; registering again", "id", c.opts.ID)
	}
	if err := c.register(ctx, status, output); err != nil {
		c.mu.Lock()
		c.registered = false
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	c.registered = true
	c.mu.Unlock()
	return nil
}

func (c *Client) register(ctx context.Context, status Status, output string) error {
	meta := map[string]string{}
	for k, v := range c.opts.Meta {
		meta[k] = v
	}
	if c.opts.Version != "" {
		meta["version"] = c.opts.Version
	}
	reg := map[string]any{
		"ID": c.opts.ID, "Name": c.opts.Service, "Address": c.opts.Address, "Port": c.opts.Port,
		"Tags": c.opts.Tags, "Meta": meta,
		"Check": map[string]any{
			"CheckID": c.checkID, "TTL": c.opts.TTL.String(), "Status": string(status),
			"DeregisterCriticalServiceAfter": c.opts.DeregisterAfter.String(),
		},
	}
	body, _ := json.Marshal(reg)
	if err := c.put(ctx, "/v1/agent/service/register", body); err != nil {
		return err
	}
	if output != "" {
		// The registration's Check carries no output; send it.
		body, _ := json.Marshal(map[string]string{"Status": string(status), "Output": output})
		return c.put(ctx, "/v1/agent/check/update/"+url.PathEscape(c.checkID), body)
	}
	return nil
}

var errNotFound = errors.New("not found")

func (c *Client) put(ctx context.Context, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.opts.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.BearerToken)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w: %s", path, errNotFound, strings.TrimSpace(string(msg)))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
