// Package consulapi serves vigil's service registry over the subset of
// Consul's HTTP API that service registration, Prometheus's consul_sd_configs
// and the Go github.com/hashicorp/consul/api client use (docs/registry.md),
// and as vigil's own GET /api/v1/registry.
package consulapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/registry"
)

// RegistryPath is vigil's own listing of the instances.
const RegistryPath = "/api/v1/registry"

// Routes lists the patterns Handler serves; mount each on the web listener.
var Routes = []string{
	"PUT /v1/agent/service/register",
	"PUT /v1/agent/service/deregister/{id...}",
	"PUT /v1/agent/check/pass/{id...}",
	"PUT /v1/agent/check/warn/{id...}",
	"PUT /v1/agent/check/fail/{id...}",
	"PUT /v1/agent/check/update/{id...}",
	"GET /v1/agent/self",
	"GET /v1/agent/services",
	"GET /v1/agent/checks",
	"GET /v1/catalog/services",
	"GET /v1/catalog/service/{name}",
	"GET /v1/health/service/{name}",
	"GET " + RegistryPath,
}

// Defaults of Options.
const (
	DefaultDatacenter = "dc1"
	// DefaultWait is a blocking query's wait when it names none, and
	// MaxWait the longest it may name, as in Consul.
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
	// maxBody bounds a registration's or an update's body.
	maxBody = 64 << 10
)

// Options configure a Handler.
type Options struct {
	Registry *registry.Registry
	// Datacenter and NodeName are what /v1/agent/self and every catalog
	// entry name as the Consul datacenter and node, and NodeAddress the
	// node's address. Defaults: "dc1", "vigil", 127.0.0.1. An instance
	// registered without an address gets the one it registered from.
	Datacenter, NodeName, NodeAddress string
	Logger                            *slog.Logger
	// Registerer receives vigil_registry_instances{health} (read from the
	// registry at each scrape), vigil_registry_blocking_queries and
	// vigil_registry_heartbeats_total{status}; nil registers nothing.
	Registerer prometheus.Registerer
}

// Handler serves the Consul subset and /api/v1/registry. It is a
// lifecycle.Component: when Run's context ends, the blocking queries
// waiting answer at once, so they do not hold the listener's drain.
type Handler struct {
	opts       Options
	mux        *http.ServeMux
	stop       chan struct{}
	blocking   prometheus.Gauge
	heartbeats *prometheus.CounterVec
}

// instancesDesc describes vigil_registry_instances.
var instancesDesc = prometheus.NewDesc("vigil_registry_instances",
	"Registered service instances, by health.", []string{"health"}, nil)

// instances is the collector of vigil_registry_instances.
type instances struct{ reg *registry.Registry }

func (c instances) Describe(ch chan<- *prometheus.Desc) { ch <- instancesDesc }

func (c instances) Collect(ch chan<- prometheus.Metric) {
	es, _ := c.reg.Entries("")
	n := map[registry.Status]int{}
	for _, e := range es {
		n[e.Health]++
	}
	for _, s := range []registry.Status{registry.Passing, registry.Warning, registry.Critical} {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n[s]), string(s))
	}
}

// NewHandler returns a handler over opts.Registry, which must be set.
func NewHandler(opts Options) *Handler {
	if opts.Registry == nil {
		panic("consulapi: nil Registry")
	}
	if opts.Datacenter == "" {
		opts.Datacenter = DefaultDatacenter
	}
	if opts.NodeName == "" {
		opts.NodeName = "vigil"
	}
	if opts.NodeAddress == "" {
		opts.NodeAddress = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), stop: make(chan struct{}),
		blocking: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_registry_blocking_queries", Help: "Consul blocking queries on the registry waiting now.",
		}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_registry_heartbeats_total", Help: "TTL check updates received, by the status they set (unknown: refused).",
		}, []string{"status"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.blocking, h.heartbeats, instances{opts.Registry})
	}
	h.mux.HandleFunc("PUT /v1/agent/service/register", h.register)
	h.mux.HandleFunc("PUT /v1/agent/service/deregister/{id...}", h.deregister)
	for _, s := range []registry.Status{registry.Passing, registry.Warning, registry.Critical} {
		h.mux.HandleFunc("PUT /v1/agent/check/"+legacyVerb[s]+"/{id...}", func(w http.ResponseWriter, r *http.Request) {
			h.updateCheck(w, r.PathValue("id"), s, r.URL.Query().Get("note"))
		})
	}
	h.mux.HandleFunc("PUT /v1/agent/check/update/{id...}", h.update)
	h.mux.HandleFunc("GET /v1/agent/self", h.self)
	h.mux.HandleFunc("GET /v1/agent/services", h.agentServices)
	h.mux.HandleFunc("GET /v1/agent/checks", h.agentChecks)
	h.mux.HandleFunc("GET /v1/catalog/services", h.catalogServices)
	h.mux.HandleFunc("GET /v1/catalog/service/{name}", h.catalogService)
	h.mux.HandleFunc("GET /v1/health/service/{name}", h.healthService)
	h.mux.HandleFunc("GET "+RegistryPath, h.list)
	return h
}

var legacyVerb = map[registry.Status]string{registry.Passing: "pass", registry.Warning: "warn", registry.Critical: "fail"}

// Run waits for ctx to end, then ends the blocking queries.
func (h *Handler) Run(ctx context.Context) error {
	<-ctx.Done()
	close(h.stop)
	return nil
}

// ServeHTTP serves the routes of Routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// duration is a Consul duration: a Go duration string ("10s") or a
// number of nanoseconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("a duration is a string such as \"10s\" or a number of nanoseconds: %s", b)
	}
	*d = duration(n)
	return nil
}

// check is Consul's AgentServiceCheck, the fields vigil reads.
type check struct {
	CheckID, Name, HTTP, Method, Status string
	TTL, Interval, Timeout              duration
	DeregisterCriticalServiceAfter      duration
}

// registration is Consul's AgentServiceRegistration, the fields vigil reads.
type registration struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Check             *check
	Checks            []*check
}

func (c *check) spec() registry.CheckSpec {
	s := registry.CheckSpec{ID: c.CheckID, Name: c.Name, Status: registry.Status(c.Status),
		TTL: time.Duration(c.TTL), URL: c.HTTP, Method: c.Method, Interval: time.Duration(c.Interval),
		Timeout: time.Duration(c.Timeout), DeregisterAfter: time.Duration(c.DeregisterCriticalServiceAfter)}
	switch {
	case c.TTL > 0:
		s.Type = registry.TTL
	case c.HTTP != "":
		s.Type = registry.HTTP
	}
	return s
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	var reg registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	in := registry.Instance{ID: reg.ID, Service: reg.Name, Address: reg.Address, Port: reg.Port, Tags: reg.Tags, Meta: reg.Meta}
	if in.Address == "" {
		// A Consul agent runs beside its services and answers with its
		// node's address; vigil is remote, so the address the instance
		// registered from is the better guess.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			in.Address = host
		}
	}
	if reg.Check != nil {
		in.Checks = append(in.Checks, reg.Check.spec())
	}
	for _, c := range reg.Checks {
		if c != nil {
			in.Checks = append(in.Checks, c.spec())
		}
	}
	if err := h.opts.Registry.Register(in); err != nil {
		writeErr(w, err)
		return
	}
	h.opts.Logger.Debug("registry: registered", "service", in.Service, "id", cmpOr(in.ID, in.Service))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *Handler) deregister(w http.ResponseWriter, r *http.Request) {
	if err := h.opts.Registry.Deregister(r.PathValue("id")); err != nil {
		writeErr(w, err)
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	var body struct{ Status, Output string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&body); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	h.updateCheck(w, r.PathValue("id"), registry.Status(body.Status), body.Output)
}

func (h *Handler) updateCheck(w http.ResponseWriter, id string, s registry.Status, out string) {
	if err := h.opts.Registry.UpdateCheck(id, s, out); err != nil {
		h.heartbeats.WithLabelValues("unknown").Inc()
		writeErr(w, err)
		return
	}
	h.heartbeats.WithLabelValues(string(s)).Inc()
}

// writeErr answers as Consul's agent does: plain text, 404 for an unknown
// id, 400 for a bad request.
func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, registry.ErrInvalid):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}

// block holds a blocking query (?index=N&wait=D) until the registry's
// index differs from N, the wait passes, the client leaves or the server
// stops. Any difference answers, not only a greater index: after vigil
// restarts its index starts again, and a client holding an older, larger
// one must not wait out its whole wait. It reports false if it answered
// an error itself.
func (h *Handler) block(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	s := q.Get("index")
	if s == "" {
		return true
	}
	want, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		http.Error(w, "Invalid index: "+s, http.StatusBadRequest)
		return false
	}
	wait := DefaultWait
	if ws := q.Get("wait"); ws != "" {
		if wait, err = parseWait(ws); err != nil {
			http.Error(w, "Invalid wait time: "+ws, http.StatusBadRequest)
			return false
		}
	}
	timer := time.NewTimer(min(wait, MaxWait))
	defer timer.Stop()
	h.blocking.Inc()
	defer h.blocking.Dec()
	for {
		idx, changed := h.opts.Registry.Watch()
		if idx != want {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return true
		case <-r.Context().Done():
			return true
		case <-h.stop:
			return true
		}
	}
}

// parseWait reads Consul's wait: a Go duration, or a number of seconds.
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}

// writeJSON answers v with Consul's query headers.
func writeJSON(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Handler) self(w http.ResponseWriter, _ *http.Request) {
	idx, _ := h.opts.Registry.Watch()
	writeJSON(w, idx, map[string]any{
		"Config": map[string]any{
			"Datacenter": h.opts.Datacenter, "PrimaryDatacenter": h.opts.Datacenter,
			"NodeName": h.opts.NodeName, "NodeID": "", "Server": true, "Version": "1.20.0", "Revision": "vigil",
		},
		"Member": map[string]any{
			"Name": h.opts.NodeName, "Addr": h.opts.NodeAddress, "Port": 8301, "Status": 1,
			"Tags": map[string]string{"dc": h.opts.Datacenter, "role": "consul"},
		},
		"Meta": map[string]string{},
	})
}

func (h *Handler) node() map[string]any {
	return map[string]any{
		"ID": "", "Node": h.opts.NodeName, "Address": h.opts.NodeAddress, "Datacenter": h.opts.Datacenter,
		"TaggedAddresses": map[string]string{"lan": h.opts.NodeAddress, "wan": h.opts.NodeAddress},
		"Meta":            map[string]string{},
	}
}

var weights = map[string]int{"Passing": 1, "Warning": 1}

func agentService(e registry.Entry, dc string) map[string]any {
	return map[string]any{
		"ID": e.ID, "Service": e.Service, "Tags": nonNil(e.Tags), "Meta": nonNilMap(e.Meta),
		"Address": e.Address, "Port": e.Port, "Weights": weights, "EnableTagOverride": false,
		"Datacenter": dc, "CreateIndex": e.CreateIndex, "ModifyIndex": e.ModifyIndex,
	}
}

func (h *Handler) healthCheck(e registry.Entry, c registry.Check) map[string]any {
	typ := "ttl"
	if c.Type == registry.HTTP {
		typ = "http"
	}
	return map[string]any{
		"Node": h.opts.NodeName, "CheckID": c.ID, "Name": c.Name, "Status": string(c.Status), "Notes": "",
		"Output": c.Output, "ServiceID": e.ID, "ServiceName": e.Service, "ServiceTags": nonNil(e.Tags),
		"Type": typ, "CreateIndex": e.CreateIndex, "ModifyIndex": e.ModifyIndex,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (h *Handler) agentServices(w http.ResponseWriter, _ *http.Request) {
	es, idx := h.opts.Registry.Entries("")
	out := map[string]any{}
	for _, e := range es {
		out[e.ID] = agentService(e, h.opts.Datacenter)
	}
	writeJSON(w, idx, out)
}

func (h *Handler) agentChecks(w http.ResponseWriter, _ *http.Request) {
	es, idx := h.opts.Registry.Entries("")
	out := map[string]any{}
	for _, e := range es {
		for _, c := range e.Checks {
			out[c.ID] = h.healthCheck(e, c)
		}
	}
	writeJSON(w, idx, out)
}

func (h *Handler) catalogServices(w http.ResponseWriter, r *http.Request) {
	if !h.block(w, r) {
		return
	}
	svcs, idx := h.opts.Registry.Services()
	writeJSON(w, idx, svcs)
}

// entries returns the service's instances that carry every ?tag= asked for.
func (h *Handler) entries(r *http.Request) ([]registry.Entry, uint64) {
	es, idx := h.opts.Registry.Entries(r.PathValue("name"))
	tags := r.URL.Query()["tag"]
	es = slices.DeleteFunc(es, func(e registry.Entry) bool {
		for _, t := range tags {
			if !slices.Contains(e.Tags, t) {
				return true
			}
		}
		return false
	})
	return es, idx
}

func (h *Handler) catalogService(w http.ResponseWriter, r *http.Request) {
	if !h.block(w, r) {
		return
	}
	es, idx := h.entries(r)
	out := make([]map[string]any, 0, len(es))
	for _, e := range es {
		out = append(out, map[string]any{
			"ID": "", "Node": h.opts.NodeName, "Address": h.opts.NodeAddress, "Datacenter": h.opts.Datacenter,
			"TaggedAddresses": map[string]string{"lan": h.opts.NodeAddress, "wan": h.opts.NodeAddress},
			"NodeMeta":        map[string]string{},
			"ServiceID":       e.ID, "ServiceName": e.Service, "ServiceAddress": e.Address, "ServicePort": e.Port,
			"ServiceTags": nonNil(e.Tags), "ServiceMeta": nonNilMap(e.Meta), "ServiceWeights": weights,
			"ServiceEnableTagOverride": false, "CreateIndex": e.CreateIndex, "ModifyIndex": e.ModifyIndex,
		})
	}
	writeJSON(w, idx, out)
}

func (h *Handler) healthService(w http.ResponseWriter, r *http.Request) {
	if !h.block(w, r) {
		return
	}
	es, idx := h.entries(r)
	passing := false
	if v, ok := r.URL.Query()["passing"]; ok {
		passing = len(v) == 0 || (v[0] != "false" && v[0] != "0")
	}
	out := make([]map[string]any, 0, len(es))
	for _, e := range es {
		if passing && e.Health != registry.Passing {
			continue
		}
		checks := make([]map[string]any, 0, len(e.Checks))
		for _, c := range e.Checks {
			checks = append(checks, h.healthCheck(e, c))
		}
		out = append(out, map[string]any{"Node": h.node(), "Service": agentService(e, h.opts.Datacenter), "Checks": checks})
	}
	writeJSON(w, idx, out)
}

// Instance is an instance as /api/v1/registry lists it.
type Instance struct {
	Service string            `json:"service"`
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
	Version string            `json:"version,omitempty"`
	Health  string            `json:"health"`
	Checks  []Check           `json:"checks"`
}

// Check is a check as /api/v1/registry lists it.
type Check struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Status  string    `json:"status"`
	Output  string    `json:"output,omitempty"`
	TTL     string    `json:"ttl,omitempty"`
	URL     string    `json:"url,omitempty"`
	Updated time.Time `json:"updated"`
}

// list serves /api/v1/registry (?service= to list one service) in vigil's
// envelope.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	es, _ := h.opts.Registry.Entries(r.URL.Query().Get("service"))
	out := make([]Instance, 0, len(es))
	for _, e := range es {
		in := Instance{Service: e.Service, ID: e.ID, Address: cmpOr(e.Address, h.opts.NodeAddress), Port: e.Port,
			Tags: nonNil(e.Tags), Meta: nonNilMap(e.Meta), Version: e.Version(), Health: string(e.Health), Checks: []Check{}}
		for _, c := range e.Checks {
			ch := Check{ID: c.ID, Name: c.Name, Type: string(c.Type), Status: string(c.Status), Output: c.Output, URL: c.URL, Updated: c.Updated.UTC()}
			if c.TTL > 0 {
				ch.TTL = c.TTL.String()
			}
			in.Checks = append(in.Checks, ch)
		}
		out = append(out, in)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": out})
}
