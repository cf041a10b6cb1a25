package otlp

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// OTLP/HTTP paths.
const (
	PathTraces  = "/v1/traces"
	PathLogs    = "/v1/logs"
	PathMetrics = "/v1/metrics"
)

const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

// NewHTTPHandler returns the OTLP/HTTP receiver: POST /v1/traces, /v1/logs
// and /v1/metrics (for the signals whose consumer is set), bodies in
// protobuf or JSON, optionally gzip/deflate/zstd compressed. Answers follow
// the OTLP/HTTP specification: 200 with an ExportResponse (carrying a
// partial success when items were dropped) once the consumer stored the
// data; 400 undecodable, 405 not POST, 413 too large, 415 unknown content
// type or encoding; 429 (overloaded) and 503 (storage trouble) with
// Retry-After, as nothing was stored and the client should retry. Error
// bodies are google.rpc.Status messages in the request's encoding.
func NewHTTPHandler(opts Options) http.Handler {
	return newReceiver(opts).httpHandler()
}

func (r *receiver) httpHandler() http.Handler {
	mux := http.NewServeMux()
	if r.traces != nil {
		mux.Handle(PathTraces, r.httpEndpoint(r.traces))
	}
	if r.logs != nil {
		mux.Handle(PathLogs, r.httpEndpoint(r.logs))
	}
	if r.metrics != nil {
		mux.Handle(PathMetrics, r.httpEndpoint(r.metrics))
	}
	return mux
}

func (r *receiver) httpEndpoint(e exporter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "OTLP export requires POST", http.StatusMethodNotAllowed)
			return
		}
		enc, ok := requestEncoding(req.Header.Get("Content-Type"))
		if !ok {
			http.Error(w, "unsupported content type: use "+contentTypeProto+" or "+contentTypeJSON,
				http.StatusUnsupportedMediaType)
			return
		}
		sig := e.signal()
		release, ok := r.admit(sig)
		if !ok {
			w.Header().Set("Retry-After", r.retryAfterSeconds())
			r.writeStatus(w, enc, http.StatusTooManyRequests, codes.Unavailable, ingest.ErrOverloaded.Error())
			return
		}
		defer release()
		// The body is paid for from the decode budget as it is inflated,
		// a megabyte ahead, so bodies being read count against memory
		// before they are in it.
		res := r.opts.DecodeBudget.Start()
		defer res.Release()
		body, err := r.bodies.ReadRequestThrough(req, func(src io.Reader) io.Reader {
			return decodecost.ChargingReader(src, res, bodyChargeStep)
		})
		if err != nil {
			switch {
			case errors.Is(err, decodecost.ErrBusy):
				r.opts.Ingest.Reject(sig, limits.ReasonOverloaded, 1)
				w.Header().Set("Retry-After", r.retryAfterSeconds())
				r.writeStatus(w, enc, http.StatusTooManyRequests, codes.Unavailable, ingest.ErrOverloaded.Error())
			case errors.Is(err, decodecost.ErrTooLarge):
				r.opts.Ingest.RejectFrom(sig, limits.ReasonRequestTooLarge, "client "+clientHost(req.RemoteAddr), 1)
				r.writeStatus(w, enc, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, err.Error())
			case errors.Is(err, httpbody.ErrTooLarge):
				r.opts.Ingest.RejectFrom(sig, limits.ReasonRequestTooLarge, "client "+clientHost(req.RemoteAddr), 1)
				r.writeStatus(w, enc, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
					"request body exceeds "+strconv.FormatInt(r.bodies.Limit(), 10)+" bytes after decompression")
			case errors.Is(err, httpbody.ErrUnsupportedEncoding):
				r.writeStatus(w, enc, http.StatusUnsupportedMediaType, codes.InvalidArgument, err.Error())
			default:
				r.opts.Ingest.RejectFrom(sig, limits.ReasonUndecodable, "client "+clientHost(req.RemoteAddr), 1)
				r.writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
			}
			return
		}
		resp, err := e.export(withClient(req.Context(), req.RemoteAddr), body.Bytes(), body.Release, enc, res)
		if err != nil {
			r.writeExportError(w, enc, err)
			return
		}
		w.Header().Set("Content-Type", contentType(enc))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp)
	})
}

// bodyChargeStep is how far ahead of the bytes read a body is charged to
// the decode budget.
const bodyChargeStep = 1 << 20

// requestEncoding maps a Content-Type to the body encoding.
func requestEncoding(ct string) (wireEncoding, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, false
	}
	switch mt {
	case contentTypeProto, "application/protobuf":
		return encProto, true
	case contentTypeJSON:
		return encJSON, true
	}
	return 0, false
}

func contentType(enc wireEncoding) string {
	if enc == encJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}

func (r *receiver) writeExportError(w http.ResponseWriter, enc wireEncoding, err error) {
	switch {
	case errors.Is(err, errUndecodable):
		r.writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, decodecost.ErrTooLarge):
		r.writeStatus(w, enc, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, err.Error()+"; send smaller batches")
	case errors.Is(err, ingest.ErrOverloaded):
		w.Header().Set("Retry-After", r.retryAfterSeconds())
		r.writeStatus(w, enc, http.StatusTooManyRequests, codes.Unavailable, ingest.ErrOverloaded.Error())
	default:
		// Whatever went wrong in storage, nothing was acknowledged: tell the
		// client to retry rather than answer 500, which it would not.
		w.Header().Set("Retry-After", r.retryAfterSeconds())
		r.writeStatus(w, enc, http.StatusServiceUnavailable, codes.Unavailable, ingest.ErrUnavailable.Error())
	}
}

func (r *receiver) retryAfterSeconds() string {
	return strconv.Itoa(int(math.Ceil(r.opts.RetryAfter.Seconds())))
}

// writeStatus answers with a google.rpc.Status body, as OTLP/HTTP asks.
func (r *receiver) writeStatus(w http.ResponseWriter, enc wireEncoding, httpCode int, code codes.Code, msg string) {
	st := status.New(code, msg).Proto()
	var (
		body []byte
		err  error
	)
	if enc == encJSON {
		body, err = protojson.Marshal(st)
	} else {
		body, err = proto.Marshal(st)
	}
	if err != nil {
		r.opts.Logger.Error("encoding OTLP error status", slog.Any("err", err))
		http.Error(w, msg, httpCode)
		return
	}
	w.Header().Set("Content-Type", contentType(enc))
	w.WriteHeader(httpCode)
	_, _ = w.Write(body)
}
