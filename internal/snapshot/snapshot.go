// Package snapshot captures a service's fault scene in one bundle (issue
// 21, item 5): every live instance's /debug/snapshot archive (sdk/diag),
// asked all at once, with the traces, logs and firing alerts vigil holds
// for the service in the same minutes, and a manifest naming every
// instance asked, which answered and why the others did not.
//
// An instance that does not answer costs the capture its per-instance
// deadline and no more; the bundle is written with whatever arrived.
// Bundles are files under a directory, the oldest removed past a count
// and a byte bound.
package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Defaults of Options and Request.
const (
	DefaultCPUSeconds = 5
	// MaxCPUSeconds keeps a capture, CPU profile and slack included,
	// inside 40 seconds.
	MaxCPUSeconds          = 20
	DefaultInstanceSlack   = 10 * time.Second
	DefaultWindow          = 15 * time.Minute
	DefaultMaxBundles      = 50
	DefaultMaxBytes        = 1 << 30
	DefaultMaxArchiveBytes = 64 << 20
	DefaultMaxTraces       = 50
	DefaultMaxLogs         = 2000
	DefaultMaxInstances    = 64
)

// ErrNoInstances is returned by Capture when neither the registry nor
// the scrape targets name an instance of the service.
var ErrNoInstances = errors.New("snapshot: no instance of the service found")

// ErrBusy is returned by Capture while another capture runs: an
// instance profiles one caller at a time.
var ErrBusy = errors.New("snapshot: a capture is already running")

// ErrInvalid wraps a request Capture refuses.
var ErrInvalid = errors.New("snapshot: invalid request")

// Traces is what a capture reads of the span store.
type Traces interface {
	storage.TraceSearcher
	storage.TraceReader
}

// Alert is a firing alert, as the bundle's alerts.json lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

// Options configures a Capturer. Dir is required; every source is
// optional (a missing one leaves its part of the bundle out).
type Options struct {
	// Dir holds the bundles (created if missing).
	Dir      string
	Registry Registry
	Targets  Targets
	Traces   Traces
	Logs     storage.LogReader
	// Alerts returns the alerts firing now.
	Alerts func() []Alert
	// Client asks the instances; it should dial through the outbound
	// policy. Nil is a plain client.
	Client *http.Client
	// NotAllowed is the error Client's dialer wraps when its outbound
	// policy refuses an address; such an instance's status is
	// not_allowed. Nil: none is told apart.
	NotAllowed error
	// InstanceSlack is what an instance gets beyond its CPU profile to
	// answer; default DefaultInstanceSlack.
	InstanceSlack time.Duration
	// Window is how far back traces and logs are read; default
	// DefaultWindow.
	Window time.Duration
	// MaxBundles and MaxBytes bound the bundles kept, oldest removed
	// first; defaults DefaultMaxBundles and DefaultMaxBytes.
	MaxBundles int
	MaxBytes   int64
	// MaxArchiveBytes bounds one instance's archive; default
	// DefaultMaxArchiveBytes.
	MaxArchiveBytes int64
	Now             func() time.Time
	Logger          *slog.Logger
}

// Request asks for one capture.
type Request struct {
	Service string `json:"service"`
	// CPUSeconds is each instance's CPU profile length; 0 means
	// DefaultCPUSeconds, at most MaxCPUSeconds.
	CPUSeconds int `json:"cpu_seconds,omitempty"`
}

// InstanceResult is what one instance answered, in the manifest.
type InstanceResult struct {
	Instance
	// Status is "ok", "timeout", "refused", "not_allowed" (the outbound
	// policy), "http_status", "bad_archive" or "error"; Error says more
	// for every status but ok.
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	HTTPStatus int     `json:"http_status,omitempty"`
	Seconds    float64 `json:"seconds"`
	// Dir is where its files are in the bundle; Files lists them.
	Dir   string   `json:"dir,omitempty"`
	Files []string `json:"files,omitempty"`
}

// Manifest describes a bundle: its manifest.json, and what the list
// returns.
type Manifest struct {
	ID         string           `json:"id"`
	Service    string           `json:"service"`
	Started    time.Time        `json:"started"`
	Finished   time.Time        `json:"finished"`
	CPUSeconds int              `json:"cpu_seconds"`
	From       time.Time        `json:"from"`
	To         time.Time        `json:"to"`
	Instances  []InstanceResult `json:"instances"`
	Answered   int              `json:"answered"`
	Traces     int              `json:"traces"`
	Logs       int              `json:"logs"`
	Alerts     int              `json:"alerts"`
	// Errors are the parts of vigil's own stores that could not be read.
	Errors []string `json:"errors,omitempty"`
	Bytes  int64    `json:"bytes,omitempty"`
}

// Capturer takes and keeps snapshots. Safe for concurrent use; one
// capture runs at a time.
type Capturer struct {
	opts  Options
	store *store
	busy  chan struct{}
}

// New returns a Capturer over opts, creating opts.Dir.
func New(opts Options) (*Capturer, error) {
	if opts.Dir == "" {
		panic("snapshot: Options.Dir is required")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.InstanceSlack <= 0 {
		opts.InstanceSlack = DefaultInstanceSlack
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxBundles <= 0 {
		opts.MaxBundles = DefaultMaxBundles
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxArchiveBytes <= 0 {
		opts.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(opts.Dir, opts.MaxBundles, opts.MaxBytes)
	if err != nil {
		return nil, err
	}
	return &Capturer{opts: opts, store: st, busy: make(chan struct{}, 1)}, nil
}

// file is one file of a bundle.
type file struct {
	name string
	data []byte
}

// Capture asks every live instance of req.Service for its snapshot at
// once, reads the service's traces, logs and alerts meanwhile, and
// stores the bundle. It returns the bundle's manifest; an instance that
// failed is in it, not an error. It fails with ErrInvalid, ErrBusy,
// ErrNoInstances, or when the bundle cannot be written.
func (c *Capturer) Capture(ctx context.Context, req Request) (Manifest, error) {
	if req.Service == "" || len(req.Service) > 256 {
		return Manifest{}, fmt.Errorf("%w: service must be 1 to 256 bytes", ErrInvalid)
	}
	if req.CPUSeconds == 0 {
		req.CPUSeconds = DefaultCPUSeconds
	}
	if req.CPUSeconds < 1 || req.CPUSeconds > MaxCPUSeconds {
		return Manifest{}, fmt.Errorf("%w: cpu_seconds must be from 1 to %d", ErrInvalid, MaxCPUSeconds)
	}
	select {
	case c.busy <- struct{}{}:
		defer func() { <-c.busy }()
	default:
		return Manifest{}, ErrBusy
	}
	instances := findInstances(c.opts.Registry, c.opts.Targets, req.Service)
	if len(instances) == 0 {
		return Manifest{}, fmt.Errorf("%w: %q (neither registered nor a scrape target labelled with it)", ErrNoInstances, req.Service)
	}
	if len(instances) > DefaultMaxInstances {
		instances = instances[:DefaultMaxInstances]
	}
	now := c.opts.Now()
	m := Manifest{
		ID: newID(now, req.Service), Service: req.Service, Started: now, CPUSeconds: req.CPUSeconds,
		From: now.Add(-c.opts.Window), To: now.Add(time.Duration(req.CPUSeconds) * time.Second),
	}
	deadline := time.Duration(req.CPUSeconds)*time.Second + c.opts.InstanceSlack

	var wg sync.WaitGroup
	results := make([]InstanceResult, len(instances))
	archives := make([][]file, len(instances))
	for i, in := range instances {
		wg.Go(func() {
			results[i], archives[i] = c.ask(ctx, in, req.CPUSeconds, deadline)
		})
	}
	// The stores are read while the instances profile, within the same
	// deadline, so the capture takes as long as its slowest instance.
	storeCtx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var own []file
	wg.Go(func() { own = c.readStores(storeCtx, &m) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}

	files := []file{}
	for i := range results {
		results[i].Dir = "instances/" + safeName(results[i].ID, i)
		for _, f := range archives[i] {
			results[i].Files = append(results[i].Files, f.name)
			files = append(files, file{results[i].Dir + "/" + f.name, f.data})
		}
		if results[i].Status == "ok" {
			m.Answered++
		}
	}
	m.Instances = results
	files = append(files, own...)
	m.Finished = c.opts.Now()
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	files = append([]file{{"manifest.json", append(manifest, '\n')}}, files...)
	var buf bytes.Buffer
	if err := writeTarGz(&buf, files, m.Finished); err != nil {
		return Manifest{}, err
	}
	m.Bytes = int64(buf.Len())
	if err := c.store.put(m, buf.Bytes()); err != nil {
		return Manifest{}, err
	}
	c.opts.Logger.Info("snapshot stored", "id", m.ID, "service", m.Service, "instances", len(m.Instances), "answered", m.Answered, "bytes", m.Bytes)
	return m, nil
}

// ask fetches one instance's archive within deadline and unpacks it.
func (c *Capturer) ask(ctx context.Context, in Instance, cpuSeconds int, deadline time.Duration) (InstanceResult, []file) {
	start := time.Now()
	res := InstanceResult{Instance: in}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	fail := func(status, msg string) (InstanceResult, []file) {
		res.Status, res.Error, res.Seconds = status, msg, time.Since(start).Seconds()
		return res, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+"?seconds="+strconv.Itoa(cpuSeconds), nil)
	if err != nil {
		return fail("error", err.Error())
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return fail(c.classify(ctx, err), err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		res.HTTPStatus = resp.StatusCode
		return fail("http_status", fmt.Sprintf("HTTP %s: %s", resp.Status, bytes.TrimSpace(body)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxArchiveBytes+1))
	if err != nil {
		return fail(c.classify(ctx, err), "reading the archive: "+err.Error())
	}
	if int64(len(body)) > c.opts.MaxArchiveBytes {
		return fail("bad_archive", fmt.Sprintf("archive larger than %d bytes", c.opts.MaxArchiveBytes))
	}
	files, err := readTarGz(body, c.opts.MaxArchiveBytes)
	if err != nil {
		return fail("bad_archive", err.Error())
	}
	res.Status, res.Seconds = "ok", time.Since(start).Seconds()
	return res, files
}

// classify names why a request got no answer.
func (c *Capturer) classify(ctx context.Context, err error) string {
	switch {
	case c.opts.NotAllowed != nil && errors.Is(err, c.opts.NotAllowed):
		return "not_allowed"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return "error"
}

// readStores reads the service's traces (errors first), logs and firing
// alerts into the bundle's files, counting them in m.
func (c *Capturer) readStores(ctx context.Context, m *Manifest) []file {
	var files []file
	addJSON := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			m.Errors = append(m.Errors, name+": "+err.Error())
			return
		}
		files = append(files, file{name, append(b, '\n')})
	}
	if c.opts.Traces != nil {
		tf, n, err := readTraces(ctx, c.opts.Traces, m.Service, m.From, m.To)
		files = append(files, tf...)
		m.Traces = n
		if err != nil {
			m.Errors = append(m.Errors, "traces: "+err.Error())
		}
	}
	if c.opts.Logs != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		q := storage.LogQuery{Service: m.Service, Start: m.From, End: m.To, Limit: DefaultMaxLogs}
		for rec, err := range c.opts.Logs.FindLogs(ctx, q) {
			if err != nil {
				m.Errors = append(m.Errors, "logs: "+err.Error())
				break
			}
			_ = enc.Encode(logLine(rec))
			m.Logs++
		}
		files = append(files, file{"logs.jsonl", buf.Bytes()})
	}
	if c.opts.Alerts != nil {
		var mine []Alert
		for _, a := range c.opts.Alerts() {
			if alertOf(a, m.Service) {
				mine = append(mine, a)
			}
		}
		m.Alerts = len(mine)
		addJSON("alerts.json", mine)
	}
	return files
}

// alertLabels are the labels that may name an alert's service.
var alertLabels = []string{"service", "service_name", "sloth_service", "job"}

func alertOf(a Alert, service string) bool {
	for _, l := range alertLabels {
		if a.Labels[l] == service {
			return true
		}
	}
	return false
}
