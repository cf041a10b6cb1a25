// Package configapi serves the configuration centre's HTTP API
// (/api/v1/config/... and /api/v1/changes) in the Prometheus API's
// envelope: {"status":"success","data":...}, and on error
// {"status":"error","errorType":...,"error":...}.
package configapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/changes"
	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/consensus"
)

// Routes lists the path patterns Handler serves; mount each on the web
// server.
var Routes = []string{ItemsPath, ConfigPrefix, ChangesPath}

// Paths.
const (
	// ItemsPath lists the items.
	ItemsPath    = "/api/v1/config"
	ConfigPrefix = "/api/v1/config/"
	ChangesPath  = "/api/v1/changes"
)

// Header and query parameter names a write's author and message are taken
// from (the header wins).
const (
	AuthorHeader  = "X-Vigil-Author"
	MessageHeader = "X-Vigil-Message"
)

// MaxWait bounds a long poll's wait; DefaultWait is used when md5 is given
// without wait.
const (
	MaxWait     = 120 * time.Second
	DefaultWait = 30 * time.Second
)

// maxGrayBody bounds a gray request: its content plus the match and
// guard.
const maxGrayBody = configcentre.MaxContentBytes*2 + 64<<10

// Proposer applies a write. configcentre.Local is one; a replicated log
// in front of the same Machine is another. Safe for concurrent use.
type Proposer interface {
	Propose(ctx context.Context, c configcentre.Command) (configcentre.Result, error)
}

// Reader reads the state the writes left (configcentre.Machine). Safe for
// concurrent use.
type Reader interface {
	Resolve(k configcentre.Key, instance string, labels map[string]string) (configcentre.Resolved, error)
	Item(k configcentre.Key) (configcentre.Item, error)
	// Items lists every item's summary, ordered by its address.
	Items() []configcentre.Summary
	Changes(start, end time.Time) []configcentre.Change
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
	// WaitApplied returns once the state has applied Result.Seq commands.
	WaitApplied(ctx context.Context, seq uint64) error
	// Schema returns the item's JSON Schema, if it has one.
	Schema(k configcentre.Key) (string, bool)
}

// Options configure a Handler.
type Options struct {
	Proposer Proposer // required
	Reader   Reader   // required
	// Now is the clock writes are stamped with; nil, time.Now.
	Now func() time.Time
	// Logger: nil, discarded.
	Logger *slog.Logger
	// LeaderURL, in a cluster, is the leader's API base URL when this node
	// is not the leader (false when unknown): a write here is forwarded to
	// it with the caller's headers and credentials, and answered once this
	// node has applied it too. Nil: such a write is answered 503.
	LeaderURL func(leader *consensus.NotLeaderError) (string, bool)
	// Client forwards writes; nil, http.DefaultClient.
	Client *http.Client
	// Principal names the credential a request authenticated with
	// (auth.Principal), recorded with each write; nil, none.
	Principal func(*http.Request) string
	// CheckGuard refuses a gray's guard (package guard's Check over the
	// current slos:): an error matching configcentre.ErrInvalid is a 400
	// with its reason. Nil: a guard is kept as given.
	CheckGuard func(guard json.RawMessage) error
	// Deploys returns the deploy change events between start and end
	// (changes.Deploys over the stored metrics), listed with the config
	// events at /api/v1/changes; nil, none. They are derived, never
	// written to the configuration centre's log.
	Deploys func(ctx context.Context, start, end time.Time) ([]configcentre.Change, error)
	// ReadBarrier, in a cluster, returns once this node's state holds every
	// write acknowledged (on any node) before the call, so that a read
	// after it is linearizable (alerting.Replicator.ReadBarrier, a read
	// index of the shared log). Every GET waits for it first, and answers
	// 503 with Retry-After when it fails (no leader to confirm the index,
	// or this node does not catch up in time). Nil: reads are of the local
	// state as it is, which on a single node is always current.
	ReadBarrier func(ctx context.Context) error
	// Registerer receives vigil_config_writes_total{action,result},
	// vigil_config_watches and vigil_config_watch_answers_total{result};
	// nil, none.
	Registerer prometheus.Registerer
}

// Headers between a follower and the leader.
const (
	// forwardedHeader marks a write a follower forwarded: it is never
	// forwarded again, so a write cannot circle between nodes that each
	// think the other leads.
	forwardedHeader = "X-Vigil-Forwarded"
	// seqHeader carries the leader's Result.Seq back to the follower.
	seqHeader = "X-Vigil-Config-Seq"
)

// forwardApplyWait bounds how long a follower waits to apply a write the
// leader acknowledged before answering anyway.
const forwardApplyWait = 10 * time.Second

// Handler serves the API.
type Handler struct {
	opts Options
	mux  *http.ServeMux
	// stopping is closed by Run's end: long polls answer 304 at once, so
	// that they do not hold the listener's drain.
	stopping chan struct{}
	stopOnce sync.Once

	writes       *prometheus.CounterVec
	watches      prometheus.Gauge
	watchAnswers *prometheus.CounterVec
}

// NewHandler returns the API's handler. It panics if a required option is
// missing.
func NewHandler(opts Options) *Handler {
	if opts.Proposer == nil || opts.Reader == nil {
		panic("configapi: Proposer and Reader are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		opts: opts, mux: http.NewServeMux(), stopping: make(chan struct{}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_config_writes_total",
			Help: "Configuration centre writes by action (put, gray, promote, abort, rollback, schema) and result: ok, refused (4xx), failed (5xx), forwarded (to the leader, which counts it again).",
		}, []string{"action", "result"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_watches",
			Help: "Configuration centre long polls waiting for a change.",
		}),
		watchAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_config_watch_answers_total",
			Help: "Configuration centre long polls answered, by result: changed (200) or not_modified (304).",
		}, []string{"result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.writes, h.watches, h.watchAnswers)
		// A Reader that bounds its state (configcentre.Machine) says
		// what the bounds dropped.
		if d, ok := opts.Reader.(interface {
			Dropped() (versions, changes uint64)
		}); ok {
			opts.Registerer.MustRegister(
				prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "vigil_config_versions_compacted_total",
					Help: "Versions dropped from items' histories past their bound (the oldest, never the formal or active gray version).",
				}, func() float64 { v, _ := d.Dropped(); return float64(v) }),
				prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "vigil_config_changes_dropped_total",
					Help: "Configuration change events dropped from the change list past its bound (the oldest).",
				}, func() float64 { _, c := d.Dropped(); return float64(c) }),
			)
		}
	}
	item := ConfigPrefix + "{namespace}/{group}/{key}"
	h.mux.HandleFunc("GET "+ItemsPath, h.items)
	h.mux.HandleFunc("PUT "+item, h.put)
	h.mux.HandleFunc("GET "+item, h.get)
	h.mux.HandleFunc("POST "+item+"/gray", h.gray)
	h.mux.HandleFunc("POST "+item+"/gray/promote", h.op(configcentre.OpPromote))
	h.mux.HandleFunc("POST "+item+"/gray/abort", h.op(configcentre.OpAbort))
	h.mux.HandleFunc("POST "+item+"/rollback", h.rollback)
	h.mux.HandleFunc("GET "+item+"/history", h.history)
	h.mux.HandleFunc("PUT "+item+"/schema", h.putSchema)
	h.mux.HandleFunc("DELETE "+item+"/schema", h.op(configcentre.OpSchema))
	h.mux.HandleFunc("GET "+item+"/schema", h.getSchema)
	h.mux.HandleFunc("GET "+ChangesPath, h.changes)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path+" (see docs/config-centre.md)")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.ReadBarrier != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// A new leader, or a follower, may not yet have applied what the
		// leader acknowledged: without the barrier a write answered 200
		// could be missing from the next read.
		if err := h.opts.ReadBarrier(r.Context()); err != nil {
			h.opts.Logger.Debug("configuration read refused: no linearizable read", "err", err)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// Run returns when ctx ends, and from then on long polls answer 304 Not
// Modified at once (the watcher asks again, of this server once it is
// back or of another). Run it in the stage that stops before the
// listeners drain.
func (h *Handler) Run(ctx context.Context) error {
	<-ctx.Done()
	h.stopOnce.Do(func() { close(h.stopping) })
	return nil
}

func itemKey(r *http.Request) configcentre.Key {
	return configcentre.Key{Namespace: r.PathValue("namespace"), Group: r.PathValue("group"), Key: r.PathValue("key")}
}

// command is a write's common part: the item, author, message, time and
// principal. The author is the X-Vigil-Author header, or the author query
// parameter, or the credential the request authenticated with, or with
// authentication off the basic-auth user name sent.
func (h *Handler) command(r *http.Request, op string) configcentre.Command {
	pick := func(header, param string) string {
		if v := r.Header.Get(header); v != "" {
			return v
		}
		return r.URL.Query().Get(param)
	}
	var principal string
	if h.opts.Principal != nil {
		principal = h.opts.Principal(r)
	}
	author := pick(AuthorHeader, "author")
	if author == "" {
		author = principal
	}
	if author == "" {
		author, _, _ = r.BasicAuth()
	}
	return configcentre.Command{
		Op: op, Item: itemKey(r), Author: author, Message: pick(MessageHeader, "message"),
		Time: h.opts.Now().UTC(), Principal: principal,
	}
}

// contentType maps a request's Content-Type to the item's: JSON
// (application/json, */*+json), YAML (application/yaml, application/x-yaml,
// text/yaml, text/x-yaml, */*+yaml) or text (text/plain, or no
// Content-Type).
func contentType(header string) (configcentre.ContentType, error) {
	if header == "" {
		return configcentre.TypeText, nil
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type %q: %v", configcentre.ErrInvalid, header, err)
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return configcentre.TypeJSON, nil
	case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml" || mt == "text/x-yaml" || strings.HasSuffix(mt, "+yaml"):
		return configcentre.TypeYAML, nil
	case mt == "text/plain":
		return configcentre.TypeText, nil
	}
	return "", errUnsupportedType{mt: mt}
}

type errUnsupportedType struct{ mt, want string }

func (e errUnsupportedType) Error() string {
	if e.want != "" {
		return fmt.Sprintf("Content-Type %q: %s", e.mt, e.want)
	}
	return fmt.Sprintf("Content-Type %s is not a configuration type: send application/json, application/yaml or text/plain", e.mt)
}

// readBody reads at most limit bytes, and refuses a longer body with
// configcentre.ErrTooLarge.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", configcentre.ErrInvalid, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: the body is over %d bytes", configcentre.ErrTooLarge, limit)
	}
	return b, nil
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request) {
	c := h.command(r, configcentre.OpPut)
	t, err := contentType(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, err)
		return
	}
	body, err := readBody(r, configcentre.MaxContentBytes)
	if err != nil {
		h.fail(w, err)
		return
	}
	if v := r.URL.Query().Get("cas"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			h.fail(w, fmt.Errorf("%w: cas %q: want the formal version the write replaces, 0 for an item that must not exist yet", configcentre.ErrInvalid, v))
			return
		}
		c.CAS = &n
	}
	c.Content, c.ContentType = string(body), t
	h.propose(w, r, c, body)
}

// GrayRequest is the body of POST .../gray.
type GrayRequest struct {
	Content string             `json:"content"`
	Match   configcentre.Match `json:"match"`
	Guard   json.RawMessage    `json:"guard,omitempty"`
	// ContentType, when given (text, json or yaml), is the gray content's
	// type; otherwise the formal version's.
	ContentType configcentre.ContentType `json:"content_type,omitempty"`
}

func (h *Handler) gray(w http.ResponseWriter, r *http.Request) {
	c := h.command(r, configcentre.OpGray)
	body, err := readBody(r, maxGrayBody)
	if err != nil {
		h.fail(w, err)
		return
	}
	var req GrayRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, fmt.Errorf("%w: gray request: %v", configcentre.ErrInvalid, err))
		return
	}
	if h.opts.CheckGuard != nil {
		if err := h.opts.CheckGuard(req.Guard); err != nil {
			if code := h.fail(w, err); code < 500 {
				h.writes.WithLabelValues(c.Op, "refused").Inc()
			}
			return
		}
	}
	c.Content, c.ContentType, c.Match, c.Guard = req.Content, req.ContentType, &req.Match, req.Guard
	h.propose(w, r, c, body)
}

// putSchema sets the item's JSON Schema: the body, application/json or
// application/schema+json.
func (h *Handler) putSchema(w http.ResponseWriter, r *http.Request) {
	c := h.command(r, configcentre.OpSchema)
	if t, err := contentType(r.Header.Get("Content-Type")); err != nil || t != configcentre.TypeJSON {
		h.fail(w, errUnsupportedType{mt: r.Header.Get("Content-Type"), want: "a schema is JSON: send application/json or application/schema+json"})
		return
	}
	body, err := readBody(r, configcentre.MaxSchemaBytes)
	if err != nil {
		h.fail(w, err)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		h.fail(w, fmt.Errorf("%w: an empty schema: DELETE .../schema removes one", configcentre.ErrInvalid))
		return
	}
	c.Content = string(body)
	h.propose(w, r, c, body)
}

// getSchema answers the item's schema as data.schema.
func (h *Handler) getSchema(w http.ResponseWriter, r *http.Request) {
	k := itemKey(r)
	if err := k.Validate(); err != nil {
		h.fail(w, err)
		return
	}
	raw, ok := h.opts.Reader.Schema(k)
	if !ok {
		h.fail(w, fmt.Errorf("%w: item %s has no schema", configcentre.ErrNotFound, k))
		return
	}
	writeData(w, map[string]json.RawMessage{"schema": json.RawMessage(raw)})
}

func (h *Handler) op(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { h.propose(w, r, h.command(r, op), nil) }
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	c := h.command(r, configcentre.OpRollback)
	v, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
	if err != nil || v == 0 {
		h.fail(w, fmt.Errorf("%w: rollback needs ?version=N, a version number from the history", configcentre.ErrInvalid))
		return
	}
	c.Version = v
	h.propose(w, r, c, nil)
}

// propose applies c; body is the request's, for forwarding it.
func (h *Handler) propose(w http.ResponseWriter, r *http.Request, c configcentre.Command, body []byte) {
	res, err := h.opts.Proposer.Propose(r.Context(), c)
	var nl *consensus.NotLeaderError
	if errors.As(err, &nl) && h.opts.LeaderURL != nil && r.Header.Get(forwardedHeader) == "" {
		h.writes.WithLabelValues(c.Op, "forwarded").Inc()
		h.forward(w, r, body, nl)
		return
	}
	if err != nil {
		if code := h.fail(w, err); code >= 500 {
			h.writes.WithLabelValues(c.Op, "failed").Inc()
		} else {
			h.writes.WithLabelValues(c.Op, "refused").Inc()
		}
		return
	}
	h.writes.WithLabelValues(c.Op, "ok").Inc()
	h.opts.Logger.Info("configuration changed", "item", c.Item.String(), "action", c.Op, "version", res.Version, "author", c.Author)
	w.Header().Set(seqHeader, strconv.FormatUint(res.Seq, 10))
	writeData(w, res)
}

// forward sends the write to the leader as the caller sent it, waits
// until this node has applied it (so a read here after the answer sees
// it), and answers what the leader answered.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, body []byte, leader *consensus.NotLeaderError) {
	base, ok := h.opts.LeaderURL(leader)
	if !ok {
		h.fail(w, fmt.Errorf("%w: and the leader's API address is unknown", leader))
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(base, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		h.fail(w, err)
		return
	}
	for _, name := range []string{"Content-Type", "Authorization", AuthorHeader, MessageHeader} {
		if v := r.Header.Get(name); v != "" {
			req.Header.Set(name, v)
		}
	}
	req.Header.Set(forwardedHeader, "1")
	client := h.opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		h.fail(w, fmt.Errorf("forwarding to the leader %s: %w", leader.LeaderID, err))
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxGrayBody))
	if err != nil {
		h.fail(w, fmt.Errorf("forwarding to the leader %s: %w", leader.LeaderID, err))
		return
	}
	if seq, err := strconv.ParseUint(resp.Header.Get(seqHeader), 10, 64); err == nil && resp.StatusCode == http.StatusOK {
		ctx, cancel := context.WithTimeout(r.Context(), forwardApplyWait)
		if err := h.opts.Reader.WaitApplied(ctx, seq); err != nil {
			h.opts.Logger.Warn("a forwarded configuration write is not applied here yet", "leader", leader.LeaderID, "seq", seq, "err", err)
		}
		cancel()
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// get answers the value the instance should use; with md5 it long-polls
// until that value's MD5 differs from it, or answers 304 at the end of
// wait.
func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	k := itemKey(r)
	q := r.URL.Query()
	instance := q.Get("instance")
	labels := map[string]string{}
	for name, vs := range q {
		if l, ok := strings.CutPrefix(name, "label."); ok && l != "" && len(vs) > 0 {
			labels[l] = vs[0]
		}
	}
	md5, watching := q.Get("md5"), q.Has("md5")
	// version, with md5, is the version the caller holds: a value of the
	// same content under another version (a gray promoted: the cohort's
	// content is the same, its version and cohort are not) answers too.
	var version uint64
	if vs := q.Get("version"); vs != "" {
		v, err := strconv.ParseUint(vs, 10, 64)
		if err != nil {
			h.fail(w, fmt.Errorf("%w: version %q is not a version number", configcentre.ErrInvalid, vs))
			return
		}
		version = v
	}
	wait := DefaultWait
	if s := q.Get("wait"); s != "" {
		d, err := parseWait(s)
		if err != nil {
			h.fail(w, err)
			return
		}
		wait = d
	}
	if !watching {
		res, err := h.opts.Reader.Resolve(k, instance, labels)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeData(w, res)
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	h.watches.Inc()
	defer h.watches.Dec()
	for {
		changed := h.opts.Reader.Changed()
		res, err := h.opts.Reader.Resolve(k, instance, labels)
		switch {
		case err == nil && (res.MD5 != md5 || version != 0 && res.Version != version):
			h.watchAnswers.WithLabelValues("changed").Inc()
			writeData(w, res)
			return
		case err != nil && !errors.Is(err, configcentre.ErrNotFound):
			h.fail(w, err)
			return
		}
		// Unchanged, or not published yet: a watcher may wait for an
		// item to appear.
		select {
		case <-changed:
		case <-timer.C:
			h.watchAnswers.WithLabelValues("not_modified").Inc()
			w.WriteHeader(http.StatusNotModified)
			return
		case <-h.stopping:
			h.watchAnswers.WithLabelValues("not_modified").Inc()
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// parseWait reads wait as a Go or Prometheus duration ("30s", "1m") or
// seconds ("30", "2.5"), at most MaxWait.
func parseWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%w: wait %q is not a duration (30s, 1m) or a number of seconds", configcentre.ErrInvalid, s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 || d > MaxWait {
		return 0, fmt.Errorf("%w: wait %s is outside 0 to %s", configcentre.ErrInvalid, s, MaxWait)
	}
	return d, nil
}

// HistoryVersion is a version as the history lists it.
type HistoryVersion struct {
	configcentre.Version
	// Formal is true for the version instances outside a gray get now;
	// Active for the active gray's.
	Formal bool `json:"formal"`
	Active bool `json:"active_gray"`
}

// items lists every item (namespace, group, key), with its formal
// version and its active gray; the contents and the history are the
// item's own reads.
func (h *Handler) items(w http.ResponseWriter, _ *http.Request) {
	writeData(w, h.opts.Reader.Items())
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	it, err := h.opts.Reader.Item(itemKey(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]HistoryVersion, 0, len(it.Versions))
	for i := len(it.Versions) - 1; i >= 0; i-- {
		v := it.Versions[i]
		out = append(out, HistoryVersion{Version: v, Formal: v.Version == it.Formal, Active: it.Gray != nil && it.Gray.Version == v.Version})
	}
	writeData(w, out)
}

// changes lists the change events between start and end (Prometheus
// times: RFC 3339 or Unix seconds), by default the last hour.
func (h *Handler) changes(w http.ResponseWriter, r *http.Request) {
	now := h.opts.Now()
	end, err := parseTime(r.FormValue("end"), now)
	if err != nil {
		h.fail(w, err)
		return
	}
	start, err := parseTime(r.FormValue("start"), end.Add(-time.Hour))
	if err != nil {
		h.fail(w, err)
		return
	}
	if end.Before(start) {
		h.fail(w, fmt.Errorf("%w: end is before start", configcentre.ErrInvalid))
		return
	}
	list := h.opts.Reader.Changes(start, end)
	if h.opts.Deploys != nil {
		deploys, err := h.opts.Deploys(r.Context(), start, end)
		if err != nil {
			// Half a list would hide a deploy: none at all says so.
			h.opts.Logger.Warn("listing deploys", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "deploys: "+err.Error())
			return
		}
		list = changes.Merge(list, deploys)
	}
	if list == nil {
		list = []configcentre.Change{}
	}
	writeData(w, list)
}

func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q: use RFC 3339 or Unix seconds", configcentre.ErrInvalid, s)
}

// fail answers err with its status: 400 invalid, 404 not found, 409 a
// gray already active, 413 too large, 415 an unknown Content-Type, 503
// with Retry-After when no leader is known, the request's context ended
// or the store failed (nothing was acknowledged; a retry may work).
func (h *Handler) fail(w http.ResponseWriter, err error) int {
	var unsupported errUnsupportedType
	code, typ := http.StatusServiceUnavailable, "unavailable"
	switch {
	case errors.As(err, &unsupported):
		code, typ = http.StatusUnsupportedMediaType, "bad_data"
	case errors.Is(err, configcentre.ErrInvalid):
		code, typ = http.StatusBadRequest, "bad_data"
	case errors.Is(err, configcentre.ErrTooLarge):
		code, typ = http.StatusRequestEntityTooLarge, "bad_data"
	case errors.Is(err, configcentre.ErrNotFound):
		code, typ = http.StatusNotFound, "not_found"
	case errors.Is(err, configcentre.ErrConflict):
		code, typ = http.StatusConflict, "conflict"
	case errors.Is(err, consensus.ErrNotLeader):
	default:
		h.opts.Logger.Error("configuration write failed", "err", err)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, code, typ, err.Error())
	return code
}

func writeData(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data})
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"status": "error", "errorType": typ, "error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
