// Package otlp receives OTLP traces, logs and metrics over HTTP and gRPC,
// decodes them into the pdata model, validates them against the ingest
// limits and hands them to the ingest consumers. A request is acknowledged
// only once its consumer returned nil, which means the data is durable.
//
// Both transports share one decode path. The fast path is pdata's own
// decoder; when it fails (typically because one trace or span id has the
// wrong length, which makes pdata refuse the whole batch) a slower path
// decodes the request leniently, drops only the offending items and tries
// pdata again, so that one bad span costs one span and not the batch.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// Options configures the receivers. A nil consumer disables its signal:
// the HTTP path answers 404 and the gRPC service is not registered.
type Options struct {
	// Traces, Logs and Metrics receive the decoded, validated data.
	Traces  ingest.TracesConsumer
	Logs    ingest.LogsConsumer
	Metrics ingest.MetricsConsumer
	// Limits bounds request size and item contents; zero fields take their
	// defaults.
	Limits limits.Limits
	// Ingest counts received and rejected items; nil disables counting.
	Ingest *selfobs.IngestMetrics
	// Logger receives problems worth an operator's attention; nil discards.
	Logger *slog.Logger
	// Now is the clock timestamps are validated against; nil means time.Now.
	Now func() time.Time
	// RetryAfter is the delay suggested to clients when vigil is overloaded
	// or its storage unavailable (HTTP Retry-After, gRPC RetryInfo).
	// Zero means DefaultRetryAfter.
	RetryAfter time.Duration
	// MaxConcurrentRequests caps the requests one receiver (the HTTP handler
	// or the gRPC server) reads, decodes and hands on at once. Past it,
	// requests are refused as overloaded before their body is read, so
	// memory stays bounded however many clients push at once. Zero means
	// ingest.DefaultMaxRequestsInFlight.
	MaxConcurrentRequests int
	// Memory refuses requests, as overloaded, while the process is near
	// its memory cap; nil never refuses.
	Memory ingest.MemoryPressure
	// DecodeBudget bounds the estimated decoded size of the requests
	// being decoded at once; share one between receivers to bound them
	// together. A request that alone exceeds it is refused as too large,
	// one that does not fit now as overloaded. Nil means a budget of
	// decodecost.DefaultSize for this receiver alone.
	DecodeBudget *decodecost.Budget
}

// DefaultRetryAfter is the retry delay suggested to clients by default.
const DefaultRetryAfter = 2 * time.Second

func (o Options) withDefaults() Options {
	o.Limits = o.Limits.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.DecodeBudget == nil {
		o.DecodeBudget = decodecost.NewBudget(decodecost.DefaultSize)
	}
	return o
}

// errUndecodable marks a request body that is not valid OTLP even after the
// lenient fallback. It maps to HTTP 400 / gRPC INVALID_ARGUMENT.
var errUndecodable = errors.New("undecodable OTLP request")

// wireEncoding is how a request body (and its response) is encoded.
type wireEncoding int

const (
	encProto wireEncoding = iota
	encJSON
)

func (e wireEncoding) String() string {
	if e == encJSON {
		return "json"
	}
	return "protobuf"
}

// receiver is what the HTTP handler and the gRPC server share.
type receiver struct {
	opts      Options
	admission *ingest.Admission
	bodies    *httpbody.Reader
	traces    *endpoint[tracesBatch]
	logs      *endpoint[logsBatch]
	metrics   *endpoint[metricsBatch]
}

func newReceiver(opts Options) *receiver {
	opts = opts.withDefaults()
	r := &receiver{
		opts:      opts,
		admission: ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: opts.MaxConcurrentRequests, Memory: opts.Memory}),
		bodies:    httpbody.NewReader(opts.Limits.MaxRequestBytes),
	}
	if opts.Traces != nil {
		r.traces = &endpoint[tracesBatch]{r: r, codec: tracesCodec{}, schema: tracesRequestSchema, consume: func(ctx context.Context, b tracesBatch) error {
			return opts.Traces.ConsumeTraces(ctx, b.td)
		}}
	}
	if opts.Logs != nil {
		r.logs = &endpoint[logsBatch]{r: r, codec: logsCodec{}, schema: logsRequestSchema, consume: func(ctx context.Context, b logsBatch) error {
			return opts.Logs.ConsumeLogs(ctx, b.ld)
		}}
	}
	if opts.Metrics != nil {
		r.metrics = &endpoint[metricsBatch]{r: r, codec: metricsCodec{}, consumerCounts: true, packed: decodecost.OTLPMetricsPacked, consume: func(ctx context.Context, b metricsBatch) error {
			return opts.Metrics.ConsumeMetrics(ctx, b.md)
		}}
	}
	return r
}

// admit takes a request slot without waiting. When none is free the
// request is counted as refused and ok is false.
func (r *receiver) admit(signal string) (release func(), ok bool) {
	release, err := r.admission.Admit()
	if err != nil {
		r.opts.Ingest.Reject(signal, limits.ReasonOverloaded, 1)
		return nil, false
	}
	return release, true
}

// exporter is one signal's export operation, independent of transport.
type exporter interface {
	signal() string
	// export decodes body, calls release once the bytes are no longer
	// needed, validates and consumes the data, and returns the encoded
	// ExportResponse. Before decoding it resizes res, the request's share
	// of the decode budget, to the decoded size body is estimated at; the
	// caller releases res. Errors are errUndecodable, decodecost.ErrTooLarge,
	// ingest.ErrOverloaded or the consumer's error.
	export(ctx context.Context, body []byte, release func(), enc wireEncoding, res *decodecost.Reservation) ([]byte, error)
}

// batch is decoded data of one signal.
type batch interface {
	// items counts spans, log records or metric data points.
	items() int
}

// signalCodec knows one signal's wire format and validation.
type signalCodec[B batch] interface {
	signal() string
	// decode is the fast path: pdata's decoder.
	decode(body []byte, enc wireEncoding) (B, error)
	// repair is the slow path, tried when decode fails: it decodes body
	// leniently, removes what pdata refuses and re-encodes it, reporting
	// what it removed.
	repair(body []byte, enc wireEncoding) ([]byte, limits.Report, error)
	// sanitize validates b in place against the limits.
	sanitize(l limits.Limits, b B, now time.Time) limits.Report
	// response encodes an ExportResponse carrying a partial success when
	// rejected or message is set.
	response(rejected int64, message string, enc wireEncoding) ([]byte, error)
}

type endpoint[B batch] struct {
	r       *receiver
	codec   signalCodec[B]
	consume func(context.Context, B) error
	// consumerCounts is set when the consumer counts received items itself
	// (metrics count samples after translation, as remote_write does).
	consumerCounts bool
	// schema is the request's message fields, for the decode budget's
	// walk of a protobuf body; nil walks it without (metrics).
	schema *decodecost.Message
	// packed names the request's packed varint fields, which decode to
	// eight bytes a wire byte; only used without a schema.
	packed decodecost.PackedVarints
}

func (e *endpoint[B]) signal() string { return e.codec.signal() }

func (e *endpoint[B]) export(ctx context.Context, body []byte, release func(), enc wireEncoding, res *decodecost.Reservation) ([]byte, error) {
	opts := &e.r.opts
	sig := e.codec.signal()
	shape, err := checkNesting(body, enc, e.schema, e.packed)
	if err != nil {
		release()
		return nil, e.undecodable(ctx, enc, fmt.Errorf("%w: %s: %w", errUndecodable, enc, err))
	}
	// Charged before decoding: what a body decodes to, not its size on
	// the wire, is what can exhaust memory. The decoded batch is held
	// until the consumer returns.
	if err := res.Resize(shape.Cost(len(body))); err != nil {
		release()
		if errors.Is(err, decodecost.ErrTooLarge) {
			opts.Ingest.RejectFrom(sig, limits.ReasonRequestTooLarge, rejectionSource(ctx, "", false), 1)
			return nil, err
		}
		opts.Ingest.Reject(sig, limits.ReasonOverloaded, 1)
		return nil, fmt.Errorf("%w: %w", ingest.ErrOverloaded, err)
	}
	b, report, err := e.decode(body, enc)
	release()
	if err != nil {
		return nil, e.undecodable(ctx, enc, err)
	}
	if !e.consumerCounts {
		opts.Ingest.Receive(sig, b.items()+report.Rejected)
	}
	svc, more := batchService(b)
	report.Merge(e.codec.sanitize(opts.Limits, b, opts.Now()))
	if !report.Empty() {
		src := rejectionSource(ctx, svc, more)
		for reason, n := range report.Dropped {
			opts.Ingest.RejectFrom(sig, reason, src, n)
		}
		for reason, n := range report.Altered {
			opts.Ingest.RejectFrom(sig, reason, src, n)
		}
	}
	if n := b.items(); n > 0 {
		if err := e.consume(ctx, b); err != nil {
			if errors.Is(err, ingest.ErrOverloaded) {
				opts.Ingest.Reject(sig, limits.ReasonOverloaded, n)
			} else {
				opts.Logger.LogAttrs(ctx, slog.LevelWarn, "OTLP data not stored, client asked to retry",
					slog.String("signal", sig), slog.Int("items", n), slog.Any("err", err))
			}
			return nil, err
		}
	}
	return e.codec.response(int64(report.Rejected), report.Message(), enc)
}

func (e *endpoint[B]) undecodable(ctx context.Context, enc wireEncoding, err error) error {
	sig := e.codec.signal()
	e.r.opts.Ingest.RejectFrom(sig, limits.ReasonUndecodable, rejectionSource(ctx, "", false), 1)
	e.r.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "undecodable OTLP request",
		slog.String("signal", sig), slog.String("encoding", enc.String()), slog.Any("err", err))
	return err
}

// decode tries pdata first and falls back to repairing the body.
func (e *endpoint[B]) decode(body []byte, enc wireEncoding) (B, limits.Report, error) {
	var zero B
	b, err := e.codec.decode(body, enc)
	if err == nil {
		return b, limits.Report{}, nil
	}
	fixed, report, rerr := e.codec.repair(body, enc)
	if rerr == nil {
		if b, rerr = e.codec.decode(fixed, enc); rerr == nil {
			return b, report, nil
		}
	}
	// pdata's error describes the original body, which is what the client sent.
	return zero, limits.Report{}, fmt.Errorf("%w: %s: %w", errUndecodable, enc, err)
}
