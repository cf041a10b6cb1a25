package elasticsearch

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// Version is the Elasticsearch version vigil answers with: agents pick
// their request format by it, and 8.x is what current agents and clients
// expect.
const Version = "8.15.0"

// PathPrefix is where vigil serves the API on its web listener: agents
// are configured with it as the Elasticsearch URL's path.
const PathPrefix = "/elasticsearch"

// ProductHeader is the header Elasticsearch 8 clients check on every
// answer before they trust it came from Elasticsearch.
const ProductHeader = "X-Elastic-Product"

const signal = "logs"

// DefaultMaxDocumentBytes caps one bulk document; the body cap
// (limits.max_request_bytes) bounds the request.
const DefaultMaxDocumentBytes = 1 << 20

// maxJSONDepth refuses documents nested deeper than any log event is,
// before decoding them into maps.
const maxJSONDepth = 64

// Options configures the handler.
type Options struct {
	// Logs receives the accepted documents; a nil return means durable.
	Logs ingest.LogsConsumer
	// Limits bounds bodies and records as for OTLP.
	Limits limits.Limits
	// MaxDocumentBytes caps one document; zero: DefaultMaxDocumentBytes.
	MaxDocumentBytes int
	// Ingest counts received and rejected records; nil disables counting.
	Ingest *selfobs.IngestMetrics
	// Admission bounds the requests decoded at once; share the OTLP
	// receivers' so that every protocol counts against one limit. Nil: a
	// default of its own.
	Admission *ingest.Admission
	// DecodeBudget bounds the memory of documents being decoded; share
	// the OTLP receivers'. Nil: a default budget of its own.
	DecodeBudget *decodecost.Budget
	// RetryAfter is suggested to clients refused while busy; zero: 2s.
	RetryAfter time.Duration
	// ClusterName names the "cluster" in the answers; empty: vigil.
	ClusterName string
	Logger      *slog.Logger
	Now         func() time.Time
}

// Handler serves the Elasticsearch API subset agents use to ship logs.
// Mount it at the root of a listener or under a prefix with
// http.StripPrefix; the paths it serves are Elasticsearch's.
type Handler struct {
	opts   Options
	bodies *httpbody.Reader
	seq    atomic.Int64
	uuid   string
}

// NewHandler returns the handler; it panics without opts.Logs.
func NewHandler(opts Options) *Handler {
	if opts.Logs == nil {
		panic("elasticsearch: Options.Logs is required")
	}
	opts.Limits = opts.Limits.WithDefaults()
	if opts.MaxDocumentBytes <= 0 {
		opts.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if opts.Admission == nil {
		opts.Admission = ingest.NewAdmission(ingest.AdmissionOptions{})
	}
	if opts.DecodeBudget == nil {
		opts.DecodeBudget = decodecost.NewBudget(decodecost.DefaultSize)
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 2 * time.Second
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "vigil"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{opts: opts, bodies: httpbody.NewReader(opts.Limits.MaxRequestBytes), uuid: newID()}
}

// setupAPIs are the calls agents make before shipping: vigil keeps no
// templates, policies or pipelines, so writes are acknowledged and reads
// find nothing, which makes an agent write them again at its next start,
// harmlessly.
var setupAPIs = map[string]bool{
	"_index_template": true, "_template": true, "_component_template": true,
	"_data_stream": true, "_ilm": true, "_ingest": true,
}

// ServeHTTP routes by Elasticsearch's paths. It is routed by hand: an
// index name and an API name share the first segment, which
// http.ServeMux patterns cannot tell apart ("/{index}/_bulk" against
// "/_template/{name}").
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(ProductHeader, "Elasticsearch")
	path := strings.Trim(r.URL.Path, "/")
	var seg []string
	if path != "" {
		seg = strings.Split(path, "/")
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	switch {
	case len(seg) == 0 && read:
		h.info(w, r)
	case len(seg) == 0:
		h.noHandler(w, r)
	case seg[0] == "_license" && read:
		h.license(w, r)
	case seg[0] == "_xpack" && read:
		h.xpack(w, r)
	case seg[0] == "_cluster" && len(seg) >= 2 && seg[1] == "health" && read:
		h.health(w, r)
	case seg[0] == "_bulk" && len(seg) == 1 && write:
		h.bulk(w, r, "")
	case setupAPIs[seg[0]] && len(seg) >= 2 && read:
		h.missing(w, r)
	case setupAPIs[seg[0]] && len(seg) >= 2 && (write || r.Method == http.MethodDelete):
		h.acknowledge(w, r)
	case strings.HasPrefix(seg[0], "_"):
		h.noHandler(w, r)
	case len(seg) == 1 && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK) // every index exists: any can be written to
	case len(seg) == 1 && r.Method == http.MethodPut:
		h.acknowledge(w, r) // create index
	case len(seg) == 2 && seg[1] == "_bulk" && write:
		h.bulk(w, r, seg[0])
	case len(seg) == 2 && (seg[1] == "_mapping" || seg[1] == "_settings") && write:
		h.acknowledge(w, r)
	case len(seg) == 2 && seg[1] == "_doc" && r.Method == http.MethodPost:
		h.doc(w, r, OpIndex, seg[0], "")
	case len(seg) == 3 && seg[1] == "_doc" && write:
		h.doc(w, r, OpIndex, seg[0], seg[2])
	case len(seg) == 3 && seg[1] == "_create" && write:
		h.doc(w, r, OpCreate, seg[0], seg[2])
	default:
		h.noHandler(w, r)
	}
}

func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in Elasticsearch's error shape.
func writeError(w http.ResponseWriter, status int, typ, reason string) {
	cause := map[string]any{"type": typ, "reason": reason}
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"root_cause": []any{cause}, "type": typ, "reason": reason},
		"status": status,
	})
}

func (h *Handler) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":         "vigil",
		"cluster_name": h.opts.ClusterName,
		"cluster_uuid": h.uuid,
		"version": map[string]any{
			"number":                              Version,
			"build_flavor":                        "default",
			"build_type":                          "vigil",
			"build_snapshot":                      false,
			"lucene_version":                      "9.11.1",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		// Clients of 7.x check the tagline to tell Elasticsearch apart.
		"tagline": "You Know, for Search",
	})
}

func (h *Handler) license(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"license": map[string]any{
		"status": "active", "uid": h.uuid, "type": "basic", "issued_to": h.opts.ClusterName, "issuer": "vigil",
		"issue_date_in_millis": 0, "max_nodes": 1000, "start_date_in_millis": -1,
	}})
}

func (h *Handler) xpack(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"build":    map[string]any{"hash": "vigil", "date": "1970-01-01T00:00:00Z"},
		"license":  map[string]any{"uid": h.uuid, "type": "basic", "mode": "basic", "status": "active"},
		"features": map[string]any{},
	})
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"cluster_name": h.opts.ClusterName, "status": "green", "timed_out": false,
		"number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 1, "active_shards": 1,
		"relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
		"active_shards_percent_as_number": 100.0,
	})
}

func (h *Handler) acknowledge(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

func (h *Handler) missing(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeError(w, http.StatusNotFound, "resource_not_found_exception", r.URL.Path+" is not kept by vigil")
}

func (h *Handler) noHandler(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusBadRequest, "illegal_argument_exception",
		"no handler found for uri ["+r.URL.Path+"] and method ["+r.Method+"]: vigil accepts logs (_bulk, _doc, _create), not searches or index management")
}

func (h *Handler) retryAfter() string {
	return strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds())))
}

func (h *Handler) refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", h.retryAfter())
	writeError(w, http.StatusTooManyRequests, "es_rejected_execution_exception", ingest.ErrOverloaded.Error())
}

// items reads a request's body and turns it into items: the bulk lines,
// or one document for the single-document endpoints. It answers the
// request itself on failure (ok false).
func (h *Handler) items(w http.ResponseWriter, r *http.Request, parse func([]byte) ([]Item, error)) (items []Item, mapped []Document, release func(), ok bool) {
	rel, err := h.opts.Admission.Admit()
	if err != nil {
		h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, 1)
		h.refuseBusy(w)
		return nil, nil, nil, false
	}
	res := h.opts.DecodeBudget.Start()
	release = func() { res.Release(); rel() }
	body, err := h.bodies.ReadRequest(r)
	if err != nil {
		release()
		switch {
		case errors.Is(err, httpbody.ErrTooLarge):
			h.opts.Ingest.RejectFrom(signal, limits.ReasonRequestTooLarge, clientSource(r), 1)
			writeError(w, http.StatusRequestEntityTooLarge, "content_too_long_exception",
				"request body exceeds "+strconv.FormatInt(h.bodies.Limit(), 10)+" bytes after decompression (limits.max_request_bytes); send smaller bulks")
		case errors.Is(err, httpbody.ErrUnsupportedEncoding):
			writeError(w, http.StatusUnsupportedMediaType, "illegal_argument_exception", err.Error())
		default:
			h.opts.Ingest.RejectFrom(signal, limits.ReasonUndecodable, clientSource(r), 1)
			writeError(w, http.StatusBadRequest, "parse_exception", err.Error())
		}
		return nil, nil, nil, false
	}
	defer body.Release()
	// What the documents decode to, not their size on the wire, is what
	// can exhaust memory.
	if err := res.Resize(decodecost.JSON(body.Bytes(), maxJSONDepth).Cost(len(body.Bytes()))); err != nil {
		release()
		if errors.Is(err, decodecost.ErrTooLarge) {
			h.opts.Ingest.RejectFrom(signal, limits.ReasonRequestTooLarge, clientSource(r), 1)
			writeError(w, http.StatusRequestEntityTooLarge, "content_too_long_exception", err.Error()+"; send smaller bulks")
			return nil, nil, nil, false
		}
		h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, 1)
		h.refuseBusy(w)
		return nil, nil, nil, false
	}
	items, err = parse(body.Bytes())
	if err != nil {
		release()
		h.opts.Ingest.RejectFrom(signal, limits.ReasonUndecodable, clientSource(r), 1)
		writeError(w, http.StatusBadRequest, "illegal_argument_exception", err.Error())
		return nil, nil, nil, false
	}
	now := h.opts.Now()
	mapped = make([]Document, len(items))
	for i := range items {
		it := &items[i]
		if it.Err != nil {
			continue
		}
		d, ierr := MapDocument(it.Source)
		if ierr == nil {
			if reason := h.opts.Limits.CheckTime(d.Timestamp, now); reason != "" {
				ierr = &ItemError{Status: http.StatusBadRequest, Type: "mapper_parsing_exception",
					Reason: "@timestamp " + d.Timestamp.Format(time.RFC3339) + " is outside what vigil keeps (" + reason + ")", Rejection: reason}
			}
		}
		it.Source = nil // the body is released on return
		it.Err = ierr
		mapped[i] = d
		if it.ID == "" {
			it.ID = newID()
		}
	}
	return items, mapped, release, true
}

// store hands the accepted items to the consumer, counting them and the
// refused ones. On error nothing was stored and the request was answered.
func (h *Handler) store(w http.ResponseWriter, r *http.Request, items []Item, mapped []Document) bool {
	rejected := map[string]int{}
	accepted := 0
	for _, it := range items {
		if it.Err != nil {
			rejected[it.Err.Rejection]++
		} else {
			accepted++
		}
	}
	h.opts.Ingest.Receive(signal, len(items))
	src := clientSource(r)
	for reason, n := range rejected {
		h.opts.Ingest.RejectFrom(signal, reason, src, n)
	}
	if accepted == 0 {
		return true
	}
	ld := ToLogs(items, mapped, h.opts.Now())
	report := h.opts.Limits.SanitizeLogs(ld, h.opts.Now())
	for reason, n := range report.Altered {
		h.opts.Ingest.RejectFrom(signal, reason, src, n)
	}
	if err := h.opts.Logs.ConsumeLogs(r.Context(), ld); err != nil {
		if errors.Is(err, ingest.ErrOverloaded) {
			h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, accepted)
			h.refuseBusy(w)
			return false
		}
		h.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "Elasticsearch bulk not stored, client asked to retry",
			slog.Int("items", accepted), slog.Any("err", err))
		w.Header().Set("Retry-After", h.retryAfter())
		writeError(w, http.StatusServiceUnavailable, "unavailable_shards_exception", ingest.ErrUnavailable.Error())
		return false
	}
	return true
}

func clientSource(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "client " + host
}

// itemResult is one item's answer: its action's name, then this.
func (h *Handler) itemResult(it Item) map[string]any {
	res := map[string]any{"_index": it.Index, "_id": it.ID}
	if it.Err != nil {
		res["status"] = it.Err.Status
		res["error"] = map[string]any{"type": it.Err.Type, "reason": it.Err.Reason}
		return res
	}
	res["_version"] = 1
	res["result"] = "created"
	res["_shards"] = map[string]int{"total": 1, "successful": 1, "failed": 0}
	res["_seq_no"] = h.seq.Add(1) - 1
	res["_primary_term"] = 1
	res["status"] = http.StatusCreated
	return res
}

func (h *Handler) bulk(w http.ResponseWriter, r *http.Request, index string) {
	start := time.Now()
	items, mapped, release, ok := h.items(w, r, func(b []byte) ([]Item, error) {
		return ParseBulk(b, ParseOptions{DefaultIndex: index, MaxDocumentBytes: h.opts.MaxDocumentBytes})
	})
	if !ok {
		return
	}
	defer release()
	if !h.store(w, r, items, mapped) {
		return
	}
	out := make([]map[string]any, len(items))
	failed := false
	for i, it := range items {
		failed = failed || it.Err != nil
		out[i] = map[string]any{it.Op: h.itemResult(it)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"took": time.Since(start).Milliseconds(), "errors": failed, "items": out})
}

// doc serves the single-document endpoints (_doc, _create), which answer
// with the item itself and its status.
func (h *Handler) doc(w http.ResponseWriter, r *http.Request, op, index, id string) {
	items, mapped, release, ok := h.items(w, r, func(b []byte) ([]Item, error) {
		it := Item{Op: op, Index: index, ID: id, Source: b}
		if len(b) > h.opts.MaxDocumentBytes {
			it.Err = &ItemError{Status: http.StatusRequestEntityTooLarge, Type: "document_too_large_exception",
				Reason: "document exceeds " + strconv.Itoa(h.opts.MaxDocumentBytes) + " bytes", Rejection: limits.ReasonItemTooLarge}
		}
		return []Item{it}, nil
	})
	if !ok {
		return
	}
	defer release()
	if !h.store(w, r, items, mapped) {
		return
	}
	it := items[0]
	if it.Err != nil {
		writeError(w, it.Err.Status, it.Err.Type, it.Err.Reason)
		return
	}
	writeJSON(w, http.StatusCreated, h.itemResult(it))
}
