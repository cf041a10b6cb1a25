package lokipush

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// The paths vigil serves on its web listener, Loki's own, so that an agent
// is pointed at vigil by its URL alone.
const (
	PushPath      = "/loki/api/v1/push"
	BuildInfoPath = "/loki/api/v1/status/buildinfo"
	ReadyPath     = "/ready"
)

// TenantHeader names the tenant in Loki's multi-tenant mode.
const TenantHeader = "X-Scope-OrgID"

// DefaultTenant is the tenant of requests without TenantHeader: Loki's
// name for it when it runs without authentication.
const DefaultTenant = "fake"

// TenantAttribute is the resource attribute that keeps TenantHeader. It is
// set only when the header was sent, so that single-tenant setups carry no
// attribute that says nothing.
const TenantAttribute = "loki.tenant"

// LokiVersion is the Loki version buildinfo reports: clients such as
// Grafana turn features on by it, and vigil's push API is that of Loki 3.
const LokiVersion = "3.4.0"

const signal = "logs"

// BuildInfo is vigil's build, reported by the buildinfo endpoint beside
// LokiVersion.
type BuildInfo struct {
	Revision, Branch, BuildDate string
}

// HandlerOptions configures the push handler.
type HandlerOptions struct {
	// Logs receives the accepted lines; a nil return means durable.
	Logs ingest.LogsConsumer
	// Limits bounds bodies, timestamps, attribute values and the like as
	// for OTLP; MaxRequestBytes also bounds the snappy-decoded body.
	Limits limits.Limits
	// MaxLineBytes and MaxLabelsPerStream are Options' (zero: Loki's
	// defaults; negative: no check).
	MaxLineBytes, MaxLabelsPerStream int
	// Streams bounds the active streams per tenant and service; nil: a
	// tracker with the default limits.
	Streams *limits.StreamTracker
	// Ingest counts received and rejected lines; nil disables counting.
	Ingest *selfobs.IngestMetrics
	// Admission bounds the requests decoded at once; share the other
	// receivers' so that every protocol counts against one limit. Nil: a
	// default of its own.
	Admission *ingest.Admission
	// DecodeBudget bounds the memory of requests being decoded; share the
	// other receivers'. Nil: a default budget of its own.
	DecodeBudget *decodecost.Budget
	// RetryAfter is suggested to clients refused while busy; zero: 2s.
	RetryAfter time.Duration
	// Ready reports whether vigil takes writes, for GET /ready; nil: ready.
	Ready func() error
	// Build is reported by the buildinfo endpoint.
	Build  BuildInfo
	Logger *slog.Logger
	Now    func() time.Time
}

// Handler serves Loki's push API and the endpoints agents probe before
// pushing (/ready, buildinfo). Mount it at each of PushPath, BuildInfoPath
// and ReadyPath, or at the root.
type Handler struct {
	opts    HandlerOptions
	bodies  *httpbody.Reader
	decoder *Decoder
}

// NewHandler returns the handler; it panics without opts.Logs.
func NewHandler(opts HandlerOptions) *Handler {
	if opts.Logs == nil {
		panic("lokipush: HandlerOptions.Logs is required")
	}
	opts.Limits = opts.Limits.WithDefaults()
	if opts.Streams == nil {
		opts.Streams = limits.NewStreamTracker(limits.StreamLimits{})
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dec := NewDecoder(Options{
		MaxDecodedBytes:    int(min(opts.Limits.MaxRequestBytes, math.MaxInt32)),
		MaxLineBytes:       opts.MaxLineBytes,
		MaxLabelsPerStream: opts.MaxLabelsPerStream,
		MaxAge:             opts.Limits.MaxPastAge,
		MaxFuture:          opts.Limits.MaxFutureSkew,
		Now:                opts.Now,
	})
	return &Handler{opts: opts, bodies: httpbody.NewReader(opts.Limits.MaxRequestBytes), decoder: dec}
}

// ServeHTTP routes by path and method.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case r.URL.Path == PushPath && r.Method == http.MethodPost:
		h.push(w, r)
	case r.URL.Path == ReadyPath && read:
		h.ready(w)
	case r.URL.Path == BuildInfoPath && read:
		h.buildInfo(w)
	case r.URL.Path == PushPath:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case r.URL.Path == ReadyPath || r.URL.Path == BuildInfoPath:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) ready(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.opts.Ready != nil {
		if err := h.opts.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (h *Handler) buildInfo(w http.ResponseWriter) {
	b := h.opts.Build
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"version": LokiVersion, "revision": b.Revision, "branch": b.Branch,
		"buildUser": "vigil", "buildDate": b.BuildDate, "goVersion": runtime.Version(),
	})
}

// reasons maps the decoder's reasons to those of vigil_rejected_total,
// sharing the names other receivers count the same loss under.
var reasons = map[Reason]string{
	ReasonBadLabels:      limits.ReasonInvalidLabel,
	ReasonTooManyLabels:  limits.ReasonTooManyLabels,
	ReasonMalformed:      limits.ReasonMalformedStream,
	ReasonLineTooLong:    limits.ReasonLineTooLong,
	ReasonTooOld:         limits.ReasonTimestampTooOld,
	ReasonTooNew:         limits.ReasonTimestampInFuture,
	ReasonTooManyEntries: limits.ReasonTooManyEntries,
	ReasonBadTimestamp:   limits.ReasonMalformedStream,
}

// perEntryCost estimates what one kept entry holds once converted to OTLP
// logs (the record, its attributes, its share of the resource), beyond the
// decoded bytes its line and labels point into.
const perEntryCost = 512

func (h *Handler) retryAfter() string {
	return strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds())))
}

// refuseBusy answers 429, which Loki clients retry with backoff.
func (h *Handler) refuseBusy(w http.ResponseWriter, n int) {
	h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, n)
	w.Header().Set("Retry-After", h.retryAfter())
	http.Error(w, ingest.ErrOverloaded.Error(), http.StatusTooManyRequests)
}

func (h *Handler) push(w http.ResponseWriter, r *http.Request) {
	src := clientSource(r)
	rel, err := h.opts.Admission.Admit()
	if err != nil {
		h.refuseBusy(w, 1)
		return
	}
	defer rel()
	res := h.opts.DecodeBudget.Start()
	defer res.Release()
	body, err := h.bodies.ReadRequestThrough(r, func(rd io.Reader) io.Reader {
		return decodecost.ChargingReader(rd, res, 64<<10)
	})
	if err != nil {
		switch {
		case errors.Is(err, httpbody.ErrTooLarge), errors.Is(err, decodecost.ErrTooLarge):
			h.opts.Ingest.RejectFrom(signal, limits.ReasonRequestTooLarge, src, 1)
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes after decompression (limits.max_request_bytes); send smaller batches", h.bodies.Limit()), http.StatusRequestEntityTooLarge)
		case errors.Is(err, decodecost.ErrBusy):
			h.refuseBusy(w, 1)
		case errors.Is(err, httpbody.ErrUnsupportedEncoding):
			http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		default:
			h.opts.Ingest.RejectFrom(signal, limits.ReasonUndecodable, src, 1)
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	defer body.Release()
	raw := body.Bytes()
	// The decoded request points into one copy of the decoded body; what
	// it costs beyond that is paid once the entries are counted.
	decoded := len(raw)
	if ct := r.Header.Get("Content-Type"); ct == "" || strings.Contains(ct, "protobuf") {
		if n, err := snappy.DecodedLen(raw); err == nil && n >= 0 {
			decoded = n
		}
	}
	if !h.charge(w, res, src, int64(len(raw))+2*int64(min(decoded, h.decoder.opts.MaxDecodedBytes))) {
		return
	}
	result, err := h.decoder.Decode(raw, r.Header.Get("Content-Type"))
	if err != nil {
		switch {
		case errors.Is(err, ErrUnsupportedContentType):
			h.opts.Ingest.RejectFrom(signal, limits.ReasonUndecodable, src, 1)
			http.Error(w, err.Error()+": send application/x-protobuf (snappy) or application/json", http.StatusUnsupportedMediaType)
		case errors.Is(err, ErrTooLarge):
			h.opts.Ingest.RejectFrom(signal, limits.ReasonRequestTooLarge, src, 1)
			http.Error(w, err.Error()+" (limits.max_request_bytes); send smaller batches", http.StatusRequestEntityTooLarge)
		default:
			h.opts.Ingest.RejectFrom(signal, limits.ReasonUndecodable, src, 1)
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
		return
	}
	if !h.charge(w, res, src, res.Held()+perEntryCost*int64(result.Entries)) {
		return
	}
	tenant := r.Header.Get(TenantHeader)
	received := result.Entries + result.Rejected()
	h.opts.Ingest.Receive(signal, received)
	streamLimited, streamDetail, limitedService := h.admitStreams(result, tenantOrDefault(tenant))

	for _, rj := range result.Rejections() {
		h.opts.Ingest.RejectFrom(signal, reasons[rj.Reason], src, rj.Entries)
	}
	if streamLimited > 0 {
		// Who fills the limit matters more than the client's address.
		limitedSrc := "service.name=" + limitedService
		if tenant != "" {
			limitedSrc += " (tenant " + tenant + ")"
		}
		h.opts.Ingest.RejectFrom(signal, limits.ReasonStreamLimit, limitedSrc+" via "+clientHost(r), streamLimited)
	}

	now := h.opts.Now()
	ld := result.Logs(now)
	if tenant != "" {
		for _, rl := range ld.ResourceLogs().All() {
			rl.Resource().Attributes().PutStr(TenantAttribute, tenant)
		}
	}
	report := h.opts.Limits.SanitizeLogs(ld, now)
	for reason, n := range report.Dropped {
		h.opts.Ingest.RejectFrom(signal, reason, src, n)
	}
	for reason, n := range report.Altered {
		h.opts.Ingest.RejectFrom(signal, reason, src, n)
	}
	if ld.LogRecordCount() > 0 {
		if err := h.opts.Logs.ConsumeLogs(r.Context(), ld); err != nil {
			kept := ld.LogRecordCount()
			if errors.Is(err, ingest.ErrOverloaded) {
				h.refuseBusy(w, kept)
				return
			}
			h.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "Loki push not stored, client asked to retry",
				slog.Int("lines", kept), slog.Any("err", err))
			w.Header().Set("Retry-After", h.retryAfter())
			http.Error(w, ingest.ErrUnavailable.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	// As Loki does, a push of which anything was dropped answers 400 with
	// what and why, the rest having been kept: the agent logs it and does
	// not retry, since the same lines would be refused again.
	var msgs []string
	if err := result.Err(); err != nil {
		msgs = append(msgs, err.Error())
	}
	if streamLimited > 0 {
		msgs = append(msgs, fmt.Sprintf("%d lines of new streams refused (%s): %s; the other lines were kept", streamLimited, limits.ReasonStreamLimit, streamDetail))
	}
	if report.Rejected > 0 {
		msgs = append(msgs, report.Message())
	}
	if len(msgs) > 0 {
		http.Error(w, strings.Join(msgs, "; "), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// charge resizes the request's reservation to n bytes, answering the
// request itself when the budget cannot hold it (ok false).
func (h *Handler) charge(w http.ResponseWriter, res *decodecost.Reservation, src string, n int64) bool {
	err := res.Resize(n)
	switch {
	case err == nil:
		return true
	case errors.Is(err, decodecost.ErrTooLarge):
		h.opts.Ingest.RejectFrom(signal, limits.ReasonRequestTooLarge, src, 1)
		http.Error(w, err.Error()+"; send smaller batches", http.StatusRequestEntityTooLarge)
	default:
		h.refuseBusy(w, 1)
	}
	return false
}

// admitStreams drops from result the streams the stream limits refuse,
// returning how many entries they had, and the first refusal's detail and
// service.
func (h *Handler) admitStreams(result *Result, tenant string) (dropped int, detail, service string) {
	now := h.opts.Now()
	kept := result.Streams[:0]
	for _, s := range result.Streams {
		if len(s.Entries) == 0 {
			continue // every line dropped: not worth a place among the active streams
		}
		svc := s.Service()
		reason, d := h.opts.Streams.Admit(tenant, svc, s.labelPairs, now)
		if reason == "" {
			kept = append(kept, s)
			continue
		}
		dropped += len(s.Entries)
		if detail == "" {
			detail, service = d, svc
		}
	}
	clear(result.Streams[len(kept):])
	result.Streams = kept
	result.Entries -= dropped
	return dropped, detail, service
}

func tenantOrDefault(t string) string {
	if t == "" {
		return DefaultTenant
	}
	return t
}

func clientSource(r *http.Request) string { return "client " + clientHost(r) }

func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
