// Package promremote receives Prometheus remote_write 1.0 requests
// (snappy-compressed prompb.WriteRequest) and appends them to a Prometheus
// storage such as the embedded TSDB.
//
// Answers follow the remote_write 1.0 specification, where the sender
// retries 5xx and 429 and drops the batch on any other 4xx:
//
//   - 204 once every sample was committed (the TSDB wrote its WAL).
//   - 400 when some series or samples were refused (invalid labels, out of
//     order, out of the accepted time range, invalid histograms). The good
//     samples of the request are committed first; the body names how many
//     were refused and why. Retrying would not help and would only resend
//     samples already stored.
//   - 400 for an undecodable body, 413 for one above Limits.MaxRequestBytes
//     or one that would decode to more than the decode budget, 405 and 415
//     for a wrong method, content type or encoding.
//   - 503 with Retry-After when too many requests are in flight (or being
//     decoded) or storage failed; nothing of the request was stored, so the
//     retry is safe.
package promremote

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/metricmeta"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// Path is where remote_write senders post, as in Prometheus.
const Path = "/api/v1/write"

// retryAfterSeconds is sent with every 503. Senders that honour Retry-After
// (Prometheus does for 5xx) wait this long before retrying, which gives a
// busy receiver room without stalling them for long.
const retryAfterSeconds = "1"

// Options configures the remote_write handler.
type Options struct {
	// Appendable is where samples go; *tsdb.DB satisfies it. Required.
	Appendable storage.AppendableV2
	// Limits bounds request size and series labels; zero fields mean defaults.
	Limits limits.Limits
	// Ingest counts received, stored and rejected samples (signal
	// "metrics"); nil counts nothing.
	Ingest *selfobs.IngestMetrics
	// MaxInFlight caps concurrently processed requests, and so the memory
	// held by decoded bodies (at most MaxInFlight × MaxRequestBytes plus
	// the decoded protobuf). Zero means ingest.DefaultMaxRequestsInFlight.
	MaxInFlight int
	// Memory refuses requests, as overloaded, while the process is near
	// its memory cap; nil never refuses.
	Memory ingest.MemoryPressure
	// DecodeBudget bounds the estimated decoded size of the requests being
	// decoded at once (shared with the other receivers); a request that
	// alone exceeds it is refused with 413, one that does not fit now with
	// 503. Nil means a budget of decodecost.DefaultSize for this handler.
	DecodeBudget *decodecost.Budget
	// Metadata receives the metric metadata senders declare (Prometheus
	// sends its targets' type, help and unit in remote_write 1.0
	// requests), for /api/v1/metadata; nil keeps none.
	Metadata *metricmeta.Store
	// Logger receives warnings about refused data; nil discards them.
	Logger *slog.Logger
	// Registerer receives vigil_remote_write_requests_total{code}; nil
	// registers nothing.
	Registerer prometheus.Registerer
	// SeriesCacheSize is how many series the handler remembers (their
	// labels, shared with the head, and storage reference: a map slot of
	// about 40 bytes each) to append known series by reference. Zero
	// means DefaultSeriesCacheSize; negative caches nothing.
	SeriesCacheSize int
}

// NewHandler returns the http.Handler for POST /api/v1/write. It panics if
// opts.Appendable is nil, a wiring mistake that no request can fix.
func NewHandler(opts Options) http.Handler {
	if opts.Appendable == nil {
		panic("promremote: Options.Appendable is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DecodeBudget == nil {
		opts.DecodeBudget = decodecost.NewBudget(decodecost.DefaultSize)
	}
	h := &handler{
		appendable: opts.Appendable,
		limits:     opts.Limits.WithDefaults(),
		ingest:     opts.Ingest,
		logger:     opts.Logger,
		admission:  ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: opts.MaxInFlight, Memory: opts.Memory}),
		budget:     opts.DecodeBudget,
		metadata:   opts.Metadata,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_remote_write_requests_total",
			Help: "Prometheus remote_write requests handled, by HTTP status code.",
		}, []string{"code"}),
		now: time.Now,
	}
	switch {
	case opts.SeriesCacheSize == 0:
		h.cache = newSeriesCache(DefaultSeriesCacheSize)
	case opts.SeriesCacheSize > 0:
		h.cache = newSeriesCache(opts.SeriesCacheSize)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.requests)
	}
	return h
}

type handler struct {
	appendable storage.AppendableV2
	limits     limits.Limits
	ingest     *selfobs.IngestMetrics
	logger     *slog.Logger
	admission  *ingest.Admission
	budget     *decodecost.Budget
	metadata   *metricmeta.Store
	requests   *prometheus.CounterVec
	cache      *seriesCache // nil caches nothing
	now        func() time.Time
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, msg := h.serve(r)
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	switch code {
	case http.StatusNoContent:
		w.WriteHeader(code)
		return
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	http.Error(w, msg, code)
}

// serve handles one request and returns the status and, for errors, the
// message for the client.
func (h *handler) serve(r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "remote_write accepts only POST"
	}
	if code, msg := checkHeaders(r.Header); code != 0 {
		return code, msg
	}

	// Admitted before the body is read, which is what bounds memory.
	release, err := h.admission.Admit()
	if err != nil {
		// The number of samples is unknown before decoding; one request
		// counts as one refused item.
		h.ingest.Reject(ingest.SignalMetrics, limits.ReasonOverloaded, 1)
		if errors.Is(err, ingest.ErrNearMemoryLimit) {
			return http.StatusServiceUnavailable, "vigil is near its memory limit, retry later"
		}
		return http.StatusServiceUnavailable, "too many remote_write requests in flight, retry later"
	}
	defer release()

	res := h.budget.Start()
	defer res.Release()
	req := getBatch()
	defer putBatch(req)
	code, msg := h.decode(r, res, req)
	if code != 0 {
		reason := limits.ReasonUndecodable
		switch code {
		case http.StatusRequestEntityTooLarge:
			reason = limits.ReasonRequestTooLarge
		case http.StatusServiceUnavailable:
			h.ingest.Reject(ingest.SignalMetrics, limits.ReasonOverloaded, 1)
			return code, msg
		}
		h.ingest.RejectFrom(ingest.SignalMetrics, reason, sender(r), 1)
		h.logger.Warn("remote_write request refused", "status", code, "reason", msg, "remote", r.RemoteAddr)
		return code, msg
	}
	return h.write(r, req)
}

// checkHeaders accepts what remote_write 1.0 senders send: a protobuf
// content type (without a proto parameter, or naming prometheus.WriteRequest)
// and snappy encoding. An absent Content-Type or Content-Encoding is taken to
// mean 1.0 with snappy, as Prometheus does, for old senders.
func checkHeaders(hdr http.Header) (int, string) {
	if ct := hdr.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-protobuf" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q, want application/x-protobuf (remote_write 1.0)", ct)
		}
		if p, ok := params["proto"]; ok && p != "prometheus.WriteRequest" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported remote_write message %q, only prometheus.WriteRequest (remote_write 1.0) is accepted", p)
		}
	}
	if enc := hdr.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q, want snappy", enc)
	}
	return 0, ""
}

// maxNesting bounds how deeply a body may nest messages. A WriteRequest
// nests four deep (request, series, histogram, bucket span); the bound only
// keeps a crafted body from recursing the decoder without limit.
const maxNesting = 64

// decode reads, inflates and unmarshals the body. The compressed body is read
// with a limit, and snappy's length header is checked before anything is
// inflated, so neither a huge upload nor a snappy bomb is held in memory.
// While unmarshalling, what each message decodes to is estimated and
// reserved from the decode budget before it is held (batch.unmarshal),
// since empty entries decode to about 70 times their size; release
// returns it once req is no longer needed. The body is read, inflated and
// decoded into req's reused buffers.
func (h *handler) decode(r *http.Request, res *decodecost.Reservation, req *batch) (code int, msg string) {
	maxDecoded := h.limits.MaxRequestBytes
	maxCompressed := int64(snappy.MaxEncodedLen(int(min(maxDecoded, int64(maxInt32)))))
	if maxCompressed < 0 {
		maxCompressed = maxDecoded
	}
	if r.ContentLength > maxCompressed {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is above the limit of %d bytes", r.ContentLength, maxCompressed)
	}
	// The body is paid for as it is read, a megabyte ahead.
	compressed, err := readAll(req.body[:0], decodecost.ChargingReader(io.LimitReader(r.Body, maxCompressed+1), res, 1<<20))
	req.body = compressed
	if code, msg := budgetRefusal(err); code != 0 {
		return code, msg
	}
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("reading request body: %v", err)
	}
	if int64(len(compressed)) > maxCompressed {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is above the limit of %d bytes", maxCompressed)
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("body is not snappy block format: %v", err)
	}
	if int64(n) > maxDecoded {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body decompresses to %d bytes, above the limit of %d bytes", n, maxDecoded)
	}
	if code, msg := budgetRefusal(res.Resize(int64(len(compressed) + n))); code != 0 {
		return code, msg
	}
	raw, err := snappy.Decode(req.raw[:cap(req.raw)], compressed)
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("body is not snappy block format: %v", err)
	}
	req.raw = raw
	err = req.unmarshal(res)
	if code, msg := budgetRefusal(err); code != 0 {
		if code == http.StatusRequestEntityTooLarge {
			msg = fmt.Sprintf("%s; the body holds more than %d messages, send smaller batches", msg, req.messages)
		}
		return code, msg
	}
	if errors.Is(err, errNested) {
		return http.StatusBadRequest, fmt.Sprintf("body nests messages deeper than %d levels, which no prometheus.WriteRequest does", maxNesting)
	}
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("body is not a prometheus.WriteRequest: %v", err)
	}
	return 0, ""
}

// budgetRefusal maps a decode budget error to the answer: 413 for a
// request that can never fit, 503 (retryable) for one that does not fit
// now; 0 for any other error.
func budgetRefusal(err error) (int, string) {
	switch {
	case errors.Is(err, decodecost.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, decodecost.ErrBusy):
		return http.StatusServiceUnavailable, "too many remote_write requests being decoded, retry later"
	}
	return 0, ""
}

const maxInt32 = 1<<31 - 1

// metricType maps remote_write's metric type to the API's.
func metricType(t prompb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case prompb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case prompb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case prompb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// write appends the request's samples in one transaction. Refused series and
// samples are skipped and counted; a storage failure rolls everything back.
func (h *handler) write(r *http.Request, req *batch) (int, string) {
	received := len(req.samples)
	for _, ts := range req.full {
		received += len(ts.Samples) + len(ts.Histograms)
	}
	h.ingest.Receive(ingest.SignalMetrics, received)
	if h.metadata != nil {
		for _, m := range req.metadata {
			h.metadata.Set(m.MetricFamilyName, metadata.Metadata{Type: metricType(m.Type), Help: m.Help, Unit: m.Unit})
		}
	}
	if received == 0 {
		// Metadata-only requests (Prometheus sends metadata separately)
		// carry nothing the TSDB keeps per series.
		return http.StatusNoContent, ""
	}

	start := h.now()
	report := limits.Report{Item: "samples"}
	app := h.appendable.AppenderV2(r.Context())
	sb := labels.NewScratchBuilder(16)
	eb := labels.NewScratchBuilder(4)
	stored := 0
	var storageErr error

	h.cache.lookup(req)
	for i := 0; storageErr == nil && i < len(req.series); i++ {
		ws := &req.series[i]
		if ws.full >= 0 {
			var n int
			n, storageErr = h.writeFull(app, &req.full[ws.full], &sb, &eb, start, &report)
			stored += n
			continue
		}
		hit := &req.hits[i]
		if !hit.eligible {
			continue
		}
		hash, cached, known := hit.hash, hit.entry, hit.known
		learn := false
		if !known {
			ls, sorted := toLabels(&sb, ws.labels)
			if reason, ok := h.limits.CheckLabels(ls); !ok {
				report.Reject(reason, ws.end-ws.first)
				continue
			}
			cached = cacheEntry{ls: ls}
			// Labels sent unsorted are sorted first; comparing the
			// sent fields with them would never match, so such
			// series are not cached.
			learn = sorted
		}
		s := seriesWriter{h: h, app: app, ls: cached.ls, ref: cached.ref, now: start, report: &report}
		for _, smp := range req.samples[ws.first:ws.end] {
			if storageErr = s.append(smp.Timestamp, smp.Value, nil, nil); storageErr != nil {
				break
			}
		}
		stored += s.stored
		if s.ref != 0 && (learn || known && s.ref != cached.ref) {
			req.learned = append(req.learned, learnedSeries{hash: hash, entry: cacheEntry{ls: cached.ls, ref: s.ref}})
		}
	}

	if storageErr == nil {
		storageErr = app.Commit()
	} else {
		_ = app.Rollback()
	}
	if h.ingest != nil {
		h.ingest.WriteDuration.WithLabelValues(ingest.SignalMetrics).Observe(h.now().Sub(start).Seconds())
	}
	if storageErr != nil {
		err := fmt.Errorf("%w: %w", ingest.ErrUnavailable, storageErr)
		h.logger.Error("remote_write: storage failed, nothing stored", "err", err, "samples", received)
		return http.StatusServiceUnavailable, "storage unavailable, nothing was stored; retry later"
	}
	// Remembered only once committed: a rolled-back series may be gone
	// from the head sooner.
	for _, l := range req.learned {
		h.cache.put(l.hash, l.entry)
	}
	if h.ingest != nil {
		h.ingest.Stored.WithLabelValues(ingest.SignalMetrics).Add(float64(stored))
	}
	for reason, n := range report.Dropped {
		h.ingest.RejectFrom(ingest.SignalMetrics, reason, sender(r), n)
	}
	if report.Rejected > 0 {
		msg := fmt.Sprintf("%s; %d of %d samples stored, do not retry", report.Message(), stored, received)
		h.logger.Warn("remote_write: samples refused", "detail", msg, "remote", r.RemoteAddr)
		return http.StatusBadRequest, msg
	}
	return http.StatusNoContent, ""
}

// learnedSeries is a series reference to cache after the commit.
type learnedSeries struct {
	hash  uint64
	entry cacheEntry
}

// writeFull appends a series decoded as a prompb.TimeSeries (one with
// exemplars or native histograms), which is never cached. It returns the
// number of samples stored and an error only for a storage failure.
func (h *handler) writeFull(app storage.AppenderV2, ts *prompb.TimeSeries, sb, eb *labels.ScratchBuilder, now time.Time, report *limits.Report) (int, error) {
	n := len(ts.Samples) + len(ts.Histograms)
	if n == 0 {
		return 0, nil
	}
	ls := ts.ToLabels(sb, nil)
	if reason, ok := h.limits.CheckLabels(ls); !ok {
		report.Reject(reason, n)
		return 0, nil
	}
	s := seriesWriter{h: h, app: app, ls: ls, now: now, report: report}
	s.exemplars = toExemplars(eb, ts.Exemplars)
	for _, smp := range ts.Samples {
		if err := s.append(smp.Timestamp, smp.Value, nil, nil); err != nil {
			return s.stored, err
		}
	}
	for _, hp := range ts.Histograms {
		var err error
		if hp.IsFloatHistogram() {
			err = s.append(hp.Timestamp, 0, nil, hp.ToFloatHistogram())
		} else {
			err = s.append(hp.Timestamp, 0, hp.ToIntHistogram(), nil)
		}
		if err != nil {
			return s.stored, err
		}
	}
	return s.stored, nil
}

// readAll appends what r yields to buf, as io.ReadAll does to a new slice.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// seriesWriter appends the samples of one series, reusing its reference.
type seriesWriter struct {
	h         *handler
	app       storage.AppenderV2
	ls        labels.Labels
	now       time.Time
	report    *limits.Report
	ref       storage.SeriesRef
	exemplars []exemplar.Exemplar // attached to the first stored sample
	stored    int
}

// append stores one sample. It returns an error only for a storage failure;
// a refused sample is counted in the report.
func (s *seriesWriter) append(t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	if reason, ok := s.h.limits.CheckSampleTimestamp(t, s.now); !ok {
		s.report.Reject(reason, 1)
		return nil
	}
	if err := normalizeHistogram(h, fh); err != nil {
		s.report.Reject(limits.ReasonUndecodable, 1)
		s.h.logger.Debug("remote_write: invalid native histogram", "series", s.ls.String(), "err", err)
		return nil
	}
	opts := storage.AOptions{Exemplars: s.exemplars}
	ref, err := s.app.Append(s.ref, s.ls, 0, t, v, h, fh, opts)
	if err != nil {
		var partial *storage.AppendPartialError
		if errors.As(err, &partial) {
			// The sample is stored; only exemplars were refused (for
			// example out of order), which costs no data the sender
			// could fix by retrying.
			s.h.logger.Debug("remote_write: exemplars refused", "series", s.ls.String(), "err", err)
			err = nil
		}
	}
	if err != nil {
		if reason, ok := limits.SampleRejection(err); ok {
			s.report.Reject(reason, 1)
			return nil
		}
		return err
	}
	s.ref = ref
	s.exemplars = nil
	s.stored++
	return nil
}

// normalizeHistogram lowers a schema finer than the TSDB supports (which
// newer senders may use) and validates the histogram, so that a malformed
// one is refused as bad data rather than mistaken for a storage failure.
func normalizeHistogram(h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	switch {
	case h != nil:
		if histogram.IsExponentialSchemaReserved(h.Schema) && h.Schema > histogram.ExponentialSchemaMax {
			if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return err
			}
		}
		return h.Validate()
	case fh != nil:
		if histogram.IsExponentialSchemaReserved(fh.Schema) && fh.Schema > histogram.ExponentialSchemaMax {
			if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return err
			}
		}
		return fh.Validate()
	}
	return nil
}

// toExemplars converts a series' exemplars, sorted by timestamp as
// AppenderV2 requires.
func toExemplars(b *labels.ScratchBuilder, eps []prompb.Exemplar) []exemplar.Exemplar {
	if len(eps) == 0 {
		return nil
	}
	out := make([]exemplar.Exemplar, 0, len(eps))
	for _, ep := range eps {
		out = append(out, ep.ToExemplar(b, nil))
	}
	slices.SortStableFunc(out, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	return out
}

// sender names a remote_write client for selfobs.RejectionSources: its
// host, without the port that changes with every connection.
func sender(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "remote_write client " + host
}
