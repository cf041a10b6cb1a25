package otlp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// partialSuccess is the decoded partial_success of any signal's response.
type partialSuccess struct {
	rejected int64
	message  string
}

// decodeResponse decodes a 200 body for the signal at path.
func decodeResponse(t *testing.T, path string, enc wireEncoding, body []byte) partialSuccess {
	t.Helper()
	type unmarshaler interface {
		UnmarshalProto([]byte) error
		UnmarshalJSON([]byte) error
	}
	var (
		u   unmarshaler
		get func() partialSuccess
	)
	switch path {
	case PathTraces:
		r := ptraceotlp.NewExportResponse()
		u, get = r, func() partialSuccess {
			return partialSuccess{r.PartialSuccess().RejectedSpans(), r.PartialSuccess().ErrorMessage()}
		}
	case PathLogs:
		r := plogotlp.NewExportResponse()
		u, get = r, func() partialSuccess {
			return partialSuccess{r.PartialSuccess().RejectedLogRecords(), r.PartialSuccess().ErrorMessage()}
		}
	case PathMetrics:
		r := pmetricotlp.NewExportResponse()
		u, get = r, func() partialSuccess {
			return partialSuccess{r.PartialSuccess().RejectedDataPoints(), r.PartialSuccess().ErrorMessage()}
		}
	}
	var err error
	if enc == encJSON {
		err = u.UnmarshalJSON(body)
	} else {
		err = u.UnmarshalProto(body)
	}
	if err != nil {
		t.Fatalf("decoding %s response: %v (%q)", path, err, body)
	}
	return get()
}

func decodeStatus(t *testing.T, enc wireEncoding, body []byte) *spb.Status {
	t.Helper()
	st := new(spb.Status)
	var err error
	if enc == encJSON {
		err = protojson.Unmarshal(body, st)
	} else {
		err = proto.Unmarshal(body, st)
	}
	if err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v (%q)", err, body)
	}
	return st
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHTTPHandler(t *testing.T) {
	bomb := gzipBomb(t, 64<<20) // limit in testOptions is 1 MiB
	tests := []struct {
		name        string
		method      string // POST if empty
		path        string
		contentType string // protobuf if empty
		encoding    string // Content-Encoding
		body        []byte
		consumerErr error

		wantStatus     int
		wantSpans      []string
		wantLogs       []string
		wantPoints     int
		wantPartial    partialSuccess
		wantCode       codes.Code // of the Status body, for errors
		wantMsg        string     // substring of the error or partial-success message
		wantRetryAfter bool
	}{
		{
			name: "traces protobuf", path: PathTraces,
			body:       tracesBody(t, makeTraces("a", "b"), encProto),
			wantStatus: 200, wantSpans: []string{"a", "b"},
		},
		{
			name: "traces JSON", path: PathTraces, contentType: "application/json",
			body:       tracesBody(t, makeTraces("a", "b", "c"), encJSON),
			wantStatus: 200, wantSpans: []string{"a", "b", "c"},
		},
		{
			name: "traces protobuf with charset parameter and alias", path: PathTraces,
			contentType: "application/protobuf; charset=binary",
			body:        tracesBody(t, makeTraces("a"), encProto),
			wantStatus:  200, wantSpans: []string{"a"},
		},
		{
			name: "traces gzip", path: PathTraces, encoding: "gzip",
			body:       gzipped(t, tracesBody(t, makeTraces("zipped"), encProto)),
			wantStatus: 200, wantSpans: []string{"zipped"},
		},
		{
			name: "logs protobuf", path: PathLogs,
			body:       logsBody(t, makeLogs("hello", "world"), encProto),
			wantStatus: 200, wantLogs: []string{"hello", "world"},
		},
		{
			name: "logs JSON gzip", path: PathLogs, contentType: "application/json", encoding: "gzip",
			body:       gzipped(t, logsBody(t, makeLogs("hello"), encJSON)),
			wantStatus: 200, wantLogs: []string{"hello"},
		},
		{
			name: "metrics protobuf", path: PathMetrics,
			body:       metricsBody(t, makeMetrics(3), encProto),
			wantStatus: 200, wantPoints: 3,
		},
		{
			name: "metrics JSON", path: PathMetrics, contentType: "application/json",
			body:       metricsBody(t, makeMetrics(2), encJSON),
			wantStatus: 200, wantPoints: 2,
		},
		{
			name: "empty request is a success", path: PathTraces,
			body: nil, wantStatus: 200,
		},
		{
			name: "gzip bomb", path: PathTraces, encoding: "gzip", body: bomb,
			wantStatus: 413, wantCode: codes.ResourceExhausted, wantMsg: "exceeds",
		},
		{
			name: "uncompressed too large", path: PathLogs, body: make([]byte, 1<<20+1),
			wantStatus: 413, wantCode: codes.ResourceExhausted,
		},
		{
			name: "unknown content type", path: PathTraces, contentType: "text/plain",
			body: []byte("hello"), wantStatus: 415,
		},
		{
			name: "missing content type", path: PathTraces, contentType: "-",
			body: tracesBody(t, makeTraces("a"), encProto), wantStatus: 415,
		},
		{
			name: "unknown content encoding", path: PathTraces, encoding: "br",
			body: []byte("whatever"), wantStatus: 415, wantCode: codes.InvalidArgument,
		},
		{
			name: "GET not allowed", method: http.MethodGet, path: PathTraces, wantStatus: 405,
		},
		{
			name: "unknown path", path: "/v1/profiles", body: nil, wantStatus: 404,
		},
		{
			name: "garbage protobuf", path: PathTraces, body: []byte{0xff, 0xff, 0xff, 0x01},
			wantStatus: 400, wantCode: codes.InvalidArgument, wantMsg: "undecodable",
		},
		{
			name: "garbage JSON", path: PathLogs, contentType: "application/json", body: []byte(`{"resourceLogs": [`),
			wantStatus: 400, wantCode: codes.InvalidArgument, wantMsg: "undecodable",
		},
		{
			name: "corrupt gzip", path: PathTraces, encoding: "gzip", body: []byte("not gzip at all"),
			wantStatus: 400, wantCode: codes.InvalidArgument,
		},
		{
			name: "partial success from validation", path: PathTraces,
			body: func() []byte {
				td := makeTraces("kept", "old")
				td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).SetStartTimestamp(1)
				return tracesBody(t, td, encProto)
			}(),
			wantStatus: 200, wantSpans: []string{"kept"},
			wantPartial: partialSuccess{1, "1 spans rejected: 1 timestamp_too_old"},
		},
		{
			name: "partial success for wrong-length ids, protobuf", path: PathTraces,
			body:       badIDTracesProto(t),
			wantStatus: 200, wantSpans: []string{"good", "good2"},
			wantPartial: partialSuccess{2, "2 spans rejected: 1 invalid_span_id, 1 invalid_trace_id; altered: 1 invalid_span_id"},
		},
		{
			name: "partial success for wrong-length ids, JSON", path: PathTraces, contentType: "application/json",
			body:       readFixture(t, "traces_bad_ids.json"),
			wantStatus: 200, wantSpans: []string{"good", "good2"},
			wantPartial: partialSuccess{2, "2 spans rejected: 1 invalid_span_id, 1 invalid_trace_id; altered: 1 invalid_trace_id"},
		},
		{
			name: "partial success for wrong-length log ids, protobuf", path: PathLogs,
			body:       badIDLogsProto(t),
			wantStatus: 200, wantLogs: []string{"ok"},
			wantPartial: partialSuccess{1, "1 log records rejected: 1 invalid_span_id"},
		},
		{
			name: "partial success for wrong-length log ids, JSON", path: PathLogs, contentType: "application/json",
			body:       readFixture(t, "logs_bad_ids.json"),
			wantStatus: 200, wantLogs: []string{"no-context", "ok"},
			wantPartial: partialSuccess{1, "1 log records rejected: 1 invalid_span_id"},
		},
		{
			name: "exemplar with wrong-length id dropped, data points kept", path: PathMetrics,
			body:       badExemplarMetricsProto(t),
			wantStatus: 200, wantPoints: 2,
			wantPartial: partialSuccess{0, "altered: 1 invalid_trace_id"},
		},
		{
			name: "exemplar with wrong-length id dropped, JSON", path: PathMetrics, contentType: "application/json",
			body: []byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[` +
				`{"asInt":"3","timeUnixNano":"1748779200000000000","exemplars":[{"asInt":"1","spanId":"01"}]}]}}]}]}]}`),
			wantStatus: 200, wantPoints: 1,
			wantPartial: partialSuccess{0, "altered: 1 invalid_span_id"},
		},
		{
			name: "everything rejected is still answered 200", path: PathTraces,
			body: func() []byte {
				td := makeTraces("zero")
				td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID([8]byte{})
				return tracesBody(t, td, encJSON)
			}(),
			contentType: "application/json",
			wantStatus:  200, wantPartial: partialSuccess{1, "1 spans rejected: 1 invalid_span_id"},
		},
		{
			name: "overloaded", path: PathTraces, consumerErr: fmt.Errorf("queue full: %w", ingest.ErrOverloaded),
			body:       tracesBody(t, makeTraces("a"), encProto),
			wantStatus: 429, wantCode: codes.Unavailable, wantMsg: "overloaded", wantRetryAfter: true,
		},
		{
			name: "storage unavailable", path: PathLogs, consumerErr: ingest.ErrUnavailable,
			contentType: "application/json",
			body:        logsBody(t, makeLogs("x"), encJSON),
			wantStatus:  503, wantCode: codes.Unavailable, wantMsg: "unavailable", wantRetryAfter: true,
		},
		{
			name: "any storage error is retryable, never 500", path: PathMetrics,
			consumerErr: errors.New("disk on fire at /var/lib/vigil"),
			body:        metricsBody(t, makeMetrics(1), encProto),
			wantStatus:  503, wantCode: codes.Unavailable, wantRetryAfter: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.consumerErr}
			h := NewHTTPHandler(testOptions(rec))
			method := cmpOr(tt.method, http.MethodPost)
			req := httptest.NewRequest(method, tt.path, bytes.NewReader(tt.body))
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", contentTypeProto)
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			resp := w.Result()
			body, _ := io.ReadAll(resp.Body)

			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.wantStatus, body)
			}
			enc, _ := requestEncoding(req.Header.Get("Content-Type"))
			if got := resp.Header.Get("Retry-After"); (got != "") != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want set: %v", got, tt.wantRetryAfter)
			} else if tt.wantRetryAfter && got != "2" {
				t.Errorf("Retry-After = %q, want 2 (DefaultRetryAfter)", got)
			}
			switch {
			case resp.StatusCode == 200:
				if ct := resp.Header.Get("Content-Type"); ct != contentType(enc) {
					t.Errorf("response Content-Type = %q, want %q", ct, contentType(enc))
				}
				if got := decodeResponse(t, tt.path, enc, body); got != tt.wantPartial {
					t.Errorf("partial success = %+v, want %+v", got, tt.wantPartial)
				}
			case tt.wantCode != codes.OK:
				st := decodeStatus(t, enc, body)
				if codes.Code(st.GetCode()) != tt.wantCode {
					t.Errorf("status code = %v, want %v", codes.Code(st.GetCode()), tt.wantCode)
				}
				if !strings.Contains(st.GetMessage(), tt.wantMsg) {
					t.Errorf("status message %q does not contain %q", st.GetMessage(), tt.wantMsg)
				}
				if strings.Contains(st.GetMessage(), "/var/lib") {
					t.Errorf("status message leaks internals: %q", st.GetMessage())
				}
			}
			if got := rec.spanNames(); !slices.Equal(got, tt.wantSpans) {
				t.Errorf("consumed spans %q, want %q", got, tt.wantSpans)
			}
			if got := rec.logBodies(); !slices.Equal(got, tt.wantLogs) {
				t.Errorf("consumed logs %q, want %q", got, tt.wantLogs)
			}
			if got := rec.dataPoints(); got != tt.wantPoints {
				t.Errorf("consumed %d data points, want %d", got, tt.wantPoints)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestHTTPHandlerCountsIngest(t *testing.T) {
	rec := &recorder{}
	opts := testOptions(rec)
	h := NewHTTPHandler(opts)
	post := func(path, ct string, body []byte) int {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	post(PathTraces, contentTypeProto, badIDTracesProto(t))              // 4 spans, 2 bad ids
	post(PathTraces, contentTypeProto, []byte{0xff})                     // undecodable
	post(PathLogs, contentTypeJSON, readFixture(t, "logs_bad_ids.json")) // 3 records, 1 bad id
	post(PathMetrics, contentTypeProto, metricsBody(t, makeMetrics(5), encProto))
	post(PathTraces, contentTypeProto, make([]byte, 2<<20)) // too large
	rec.err = ingest.ErrOverloaded
	post(PathLogs, contentTypeProto, logsBody(t, makeLogs("a", "b"), encProto))

	m := opts.Ingest
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"received traces", testutil.ToFloat64(m.Received.WithLabelValues("traces")), 4},
		{"received logs", testutil.ToFloat64(m.Received.WithLabelValues("logs")), 3 + 2},
		// Metrics are counted by their consumer, in samples after translation
		// (as remote_write counts them), not here in data points.
		{"received metrics", testutil.ToFloat64(m.Received.WithLabelValues("metrics")), 0},
		{"invalid_trace_id", testutil.ToFloat64(m.Rejected.WithLabelValues("traces", limits.ReasonInvalidTraceID)), 1},
		// one span plus one link
		{"invalid_span_id traces", testutil.ToFloat64(m.Rejected.WithLabelValues("traces", limits.ReasonInvalidSpanID)), 2},
		{"invalid_span_id logs", testutil.ToFloat64(m.Rejected.WithLabelValues("logs", limits.ReasonInvalidSpanID)), 1},
		{"undecodable", testutil.ToFloat64(m.Rejected.WithLabelValues("traces", limits.ReasonUndecodable)), 1},
		{"request_too_large", testutil.ToFloat64(m.Rejected.WithLabelValues("traces", limits.ReasonRequestTooLarge)), 1},
		{"overloaded", testutil.ToFloat64(m.Rejected.WithLabelValues("logs", limits.ReasonOverloaded)), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestHTTPHandlerDisabledSignal(t *testing.T) {
	rec := &recorder{}
	h := NewHTTPHandler(Options{Traces: rec})
	for path, want := range map[string]int{PathTraces: 200, PathLogs: 404, PathMetrics: 404} {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.Header.Set("Content-Type", contentTypeProto)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("%s: status %d, want %d", path, w.Code, want)
		}
	}
}

func TestHTTPMethodNotAllowedAdvertisesPost(t *testing.T) {
	h := NewHTTPHandler(Options{Traces: &recorder{}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, PathTraces, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}
