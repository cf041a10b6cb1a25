// Package configcentre watches items of vigil's configuration centre from a
// service: each item is a Value that holds the content this instance should
// use, kept current by a long poll (GET /api/v1/config/{ns}/{group}/{key}
// with md5= and wait=), cached on disk so that a restart while vigil is down
// starts on the last good value, and reported as
// vigil_config_applied_info{item,version,cohort}.
//
// The package speaks only the HTTP API; it never imports vigil's server.
package configcentre

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrInvalidItem is returned for a namespace, group or key that is empty,
// holds a '/' or is longer than 256 bytes, as the server refuses them.
var ErrInvalidItem = errors.New("configcentre: invalid item name")

// Options configures a Client. URL is required; the rest is optional.
type Options struct {
	// URL is vigil's API, e.g. "http://vigil:7070".
	URL string
	// Instance is this instance's id (the server's gray by instance list
	// or percentage matches it); empty takes part in label grays only.
	Instance string
	// Labels are sent as label.<name>=<value>, so grays by labels match
	// (service.version, zone, ...).
	Labels map[string]string
	// BearerToken, when set, is sent as "Authorization: Bearer <token>"
	// (with authentication on, any credential may read configuration).
	BearerToken string
	// CacheDir keeps the last value of each item on disk, one file per
	// item; empty keeps none.
	CacheDir string
	// Wait is each long poll's wait (default 30s, at most 120s).
	Wait time.Duration
	// StartTimeout bounds the first fetch of a watched item (default 2s);
	// past it the item starts from the disk cache, if any.
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed poll
	// (defaults 1s and 30s); it doubles at each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient sends the requests; nil means a client without an
	// overall timeout (the long poll sets its own).
	HTTPClient *http.Client
	// Logger receives the watch's warnings; nil means slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives vigil_config_applied_info.
	Registerer prometheus.Registerer
	// OnApply, when set, is called after any item's applied value changes
	// (the SDK stamps the versions on spans with it).
	OnApply func(item string, s Snapshot)
}

// Snapshot is one value of an item, as the server resolved it for this
// instance.
type Snapshot struct {
	Content     string `json:"content"`
	ContentType string `json:"content_type"` // "text", "json" or "yaml"
	Version     uint64 `json:"version"`
	MD5         string `json:"md5"`
	// Gray is true when this instance is in the item's active gray.
	Gray bool `json:"gray"`
	// FromCache is true while the value comes from the disk cache and
	// the server has not confirmed it yet.
	FromCache bool `json:"-"`
}

// Cohort is "gray" or "formal", as the metric labels it.
func (s Snapshot) Cohort() string {
	if s.Gray {
		return "gray"
	}
	return "formal"
}

// Client watches items. It is safe for concurrent use.
type Client struct {
	opts    Options
	base    *url.URL
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	applied *prometheus.GaugeVec

	mu     sync.Mutex
	items  map[string]*Value
	closed bool
}

// New returns a client; nothing is sent until Watch.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(opts.URL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("configcentre: URL %q: want http(s)://host:port", opts.URL)
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	opts.Wait = min(opts.Wait, 120*time.Second)
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{opts: opts, base: u, items: map[string]*Value{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.applied = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_config_applied_info",
		Help: "The configuration version each watched item applies (1), and whether it is the item's gray or formal version.",
	}, []string{"item", "version", "cohort"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(c.applied); err != nil {
			return nil, fmt.Errorf("configcentre: metric: %w", err)
		}
	}
	return c, nil
}

// Close stops every watch and waits for them to end. Values keep their
// last content. Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Watch returns the watched value of namespace/group/key, the same Value
// for the same item. The first call fetches the value (within
// StartTimeout); if vigil cannot be reached it starts from the disk cache,
// and if there is none, Get returns the zero Snapshot until a value
// arrives (Wait waits for it). Either way one goroutine keeps it current
// until Close.
func (c *Client) Watch(namespace, group, key string) (*Value, error) {
	for _, s := range []string{namespace, group, key} {
		if s == "" || len(s) > 256 || strings.Contains(s, "/") {
			return nil, fmt.Errorf("%w: %q", ErrInvalidItem, namespace+"/"+group+"/"+key)
		}
	}
	item := namespace + "/" + group + "/" + key
	c.mu.Lock()
	if v, ok := c.items[item]; ok {
		c.mu.Unlock()
		<-v.started // the first caller's fetch, so Get is as good as theirs
		return v, nil
	}
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("configcentre: client closed")
	}
	v := &Value{c: c, item: item, path: c.base.JoinPath("api/v1/config", url.PathEscape(namespace), url.PathEscape(group), url.PathEscape(key)).String(), ready: make(chan struct{}), started: make(chan struct{})}
	c.items[item] = v
	c.wg.Add(1)
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, c.opts.StartTimeout)
	s, found, _, err := v.fetch(ctx, "", 0, false)
	cancel()
	switch {
	case err == nil && found:
		v.apply(s)
	case err == nil:
		// Not put yet: watched with md5= until it is.
	default:
		if cached, ok := c.readCache(item); ok {
			cached.FromCache = true
			v.apply(cached)
			c.opts.Logger.Warn("vigil config: cannot fetch from vigil; starting from the disk cache",
				"item", item, "version", cached.Version, "error", err.Error())
		} else {
			c.opts.Logger.Warn("vigil config: cannot fetch from vigil and no cached value; waiting for one",
				"item", item, "error", err.Error())
		}
	}
	close(v.started)
	go v.watch()
	return v, nil
}

// Value is one watched item. Its methods are safe for concurrent use.
type Value struct {
	c    *Client
	item string
	path string

	mu        sync.Mutex
	cur       Snapshot
	listeners []func(Snapshot)
	ready     chan struct{} // closed at the first value
	started   chan struct{} // closed after Watch's first fetch
	readyOnce sync.Once
	// cbMu serialises callbacks, so each sees the values in order.
	cbMu sync.Mutex
}

// Item is "namespace/group/key".
func (v *Value) Item() string { return v.item }

// Get returns the current value; Version is 0 while there is none yet.
func (v *Value) Get() Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cur
}

// Wait blocks until the value has content (from the server or the disk
// cache) or ctx ends.
func (v *Value) Wait(ctx context.Context) error {
	select {
	case <-v.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OnChange registers f, called with every value applied after this call
// (not the current one): from the watch's goroutine, one call at a time, in
// the order the values arrive. A slow f delays the next poll.
func (v *Value) OnChange(f func(Snapshot)) {
	v.mu.Lock()
	v.listeners = append(v.listeners, f)
	v.mu.Unlock()
}

// Decode decodes the current content into dst (see Snapshot.Decode); it
// fails with ErrNoValue while there is no value.
func (v *Value) Decode(dst any) error { return v.Get().Decode(dst) }

// apply makes s current and tells the metric, OnApply and the listeners.
// It returns without effect when s has the MD5 already held (a cached
// value confirmed by the server only loses FromCache).
func (v *Value) apply(s Snapshot) {
	v.mu.Lock()
	prev := v.cur
	if prev.Version != 0 && prev.MD5 == s.MD5 && prev.Gray == s.Gray && prev.Version == s.Version {
		v.cur.FromCache = v.cur.FromCache && s.FromCache
		v.mu.Unlock()
		return
	}
	v.cur = s
	listeners := v.listeners
	v.mu.Unlock()
	v.readyOnce.Do(func() { close(v.ready) })

	if prev.Version != 0 {
		v.c.applied.DeleteLabelValues(v.item, strconv.FormatUint(prev.Version, 10), prev.Cohort())
	}
	v.c.applied.WithLabelValues(v.item, strconv.FormatUint(s.Version, 10), s.Cohort()).Set(1)
	if !s.FromCache {
		if err := v.c.writeCache(v.item, s); err != nil {
			v.c.opts.Logger.Warn("vigil config: cannot write the disk cache", "item", v.item, "error", err.Error())
		}
	}
	if v.c.opts.OnApply != nil {
		v.c.opts.OnApply(v.item, s)
	}
	v.cbMu.Lock()
	defer v.cbMu.Unlock()
	for _, f := range listeners {
		f(s)
	}
}

// watch long-polls until the client closes.
func (v *Value) watch() {
	defer v.c.wg.Done()
	backoff := time.Duration(0)
	lastErr := ""
	for {
		held := v.Get()
		s, found, retryAfter, err := v.fetch(v.c.ctx, held.MD5, held.Version, true)
		if v.c.ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = nextBackoff(backoff, v.c.opts.MinBackoff, v.c.opts.MaxBackoff)
			d := max(retryAfter, jitter(backoff))
			// Once per outage and kind of error, not at every retry.
			if err.Error() != lastErr {
				lastErr = err.Error()
				v.c.opts.Logger.Warn("vigil config: watch failed; keeping the last value and retrying", "item", v.item,
					"version", held.Version, "retry_in", d.Round(time.Millisecond).String(), "error", lastErr)
			}
			if !sleep(v.c.ctx, d) {
				return
			}
			continue
		}
		if lastErr != "" {
			v.c.opts.Logger.Info("vigil config: watching again", "item", v.item)
			lastErr = ""
		}
		backoff = 0
		if found {
			v.apply(s)
		} else if held.FromCache {
			// 304: the server holds what the cache held.
			v.mu.Lock()
			if v.cur.MD5 == held.MD5 {
				v.cur.FromCache = false
			}
			v.mu.Unlock()
		}
	}
}

// statusError is a refused request, with the server's reason.
type statusError struct {
	code   int
	reason string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.code, e.reason)
}

// fetch asks for the value; with watch it long-polls with md5 and
// version (0: none held), so a promoted gray, whose content is the same
// under a new formal version, answers too. found is false for a 304 or
// (without watch) a 404: nothing new. retryAfter is a 503's Retry-After.
func (v *Value) fetch(ctx context.Context, md5 string, version uint64, watch bool) (s Snapshot, found bool, retryAfter time.Duration, err error) {
	q := url.Values{}
	if v.c.opts.Instance != "" {
		q.Set("instance", v.c.opts.Instance)
	}
	for k, val := range v.c.opts.Labels {
		q.Set("label."+k, val)
	}
	if watch {
		q.Set("md5", md5)
		if version != 0 {
			q.Set("version", strconv.FormatUint(version, 10))
		}
		q.Set("wait", v.c.opts.Wait.String())
		// The server answers 304 at wait; allow for its latency.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.c.opts.Wait+15*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.path+"?"+q.Encode(), nil)
	if err != nil {
		return s, false, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if v.c.opts.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+v.c.opts.BearerToken)
	}
	resp, err := v.c.opts.HTTPClient.Do(req)
	if err != nil {
		return s, false, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return s, false, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return s, false, 0, nil
	case resp.StatusCode == http.StatusNotFound && !watch:
		return s, false, 0, nil
	case resp.StatusCode != http.StatusOK:
		var env struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &env)
		if env.Error == "" {
			env.Error = http.StatusText(resp.StatusCode)
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			retryAfter = time.Duration(secs) * time.Second
		}
		return s, false, retryAfter, &statusError{code: resp.StatusCode, reason: env.Error}
	}
	var env struct {
		Status string   `json:"status"`
		Data   Snapshot `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return s, false, 0, fmt.Errorf("decoding the answer: %w", err)
	}
	if env.Status != "success" || env.Data.MD5 == "" {
		return s, false, 0, fmt.Errorf("unexpected answer %.200s", body)
	}
	return env.Data, true, 0, nil
}

// nextBackoff doubles prev within [lo, hi].
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	if prev < lo {
		return lo
	}
	return min(2*prev, hi)
}

// jitter spreads d over [d/2, d), so that instances a restart of vigil
// disconnected together do not come back together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
