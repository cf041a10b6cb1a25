package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// fuzzSubroutes are the endpoints behind the prefixes the server mounts
// whole (the Prometheus and Alertmanager APIs), and the OTLP/HTTP listener's.
var fuzzSubroutes = map[string][]string{
	"/api/v1/": {
		"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars", "/api/v1/series", "/api/v1/labels",
		"/api/v1/label/job/values", "/api/v1/label/%ff/values", "/api/v1/targets", "/api/v1/targets/metadata",
		"/api/v1/rules", "/api/v1/alerts", "/api/v1/metadata", "/api/v1/format_query", "/api/v1/parse_query",
		"/api/v1/status/config", "/api/v1/status/flags", "/api/v1/status/runtimeinfo", "/api/v1/status/buildinfo",
		"/api/v1/status/tsdb", "/api/v1/status/walreplay", "/api/v1/read", "/api/v1/alertmanagers",
		"/api/v1/admin/tsdb/delete_series", "/api/v1/admin/tsdb/clean_tombstones", "/api/v1/admin/tsdb/snapshot",
		"/api/v1/scrape_pools", "/api/v1/scrape_pools/config", "/api/v1/targets/relabel_steps", "/api/v1/status/tsdb/blocks",
		"/api/v1/status/self_metrics", "/api/v1/features", "/api/v1/notifications", "/api/v1/notifications/live",
		"/api/v1/search/metric_names", "/api/v1/search/label_names", "/api/v1/search/label_values", "/api/v1/openapi.yaml",
		"/api/v1/otlp/v1/metrics", "/api/v1/no_such_endpoint",
	},
	"/api/v1/config/": {
		"/api/v1/config/shop/payment/settings", "/api/v1/config/shop/payment/settings/gray",
		"/api/v1/config/shop/payment/settings/gray/promote", "/api/v1/config/shop/payment/settings/gray/abort",
		"/api/v1/config/shop/payment/settings/history", "/api/v1/config/shop/payment/settings/rollback",
		"/api/v1/config/%2e%2e/x/y", "/api/v1/config/a/b/c/d/e/f",
	},
	"/api/v2/": {
		"/api/v2/status", "/api/v2/receivers", "/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences",
		"/api/v2/silence/00000000-0000-0000-0000-000000000000", "/api/v2/silence/x",
	},
}

// fuzzValues are query parameter values that have broken HTTP APIs before:
// huge and negative numbers, NaN, bad UTF-8, regex and PromQL edge cases,
// deep nesting, and plain junk.
var fuzzValues = []string{
	"", "0", "-1", "1e309", "NaN", "-Inf", "9999999999999999999999", "1.5", "2038-01-19T03:14:08Z", "now",
	"\xff\xfe", "%", "'", "\"", "\x00", strings.Repeat("a", 70_000), "{", "}", "[", "up", "up{", `up{job=~"(a+)+$"}`,
	`{__name__=~".*"}`, `{__name__=~".+"}`, "sum(rate(x[5m])) by (", strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000),
	"rate(up[1ms])", "up[100000d:1ms]", "topk(-1, up)", "histogram_quantile(2, x)", `label_replace(up, "a", "$1", "b", "(.*")`,
	"00000000000000000000000000000000", "ffffffffffffffffffffffffffffffff", "zz", "1" + strings.Repeat("0", 40),
	"1ms", "-5m", "0s", "1000000h", `{"a":1}`, `[]`, "true", "false", "x=y", "service.name=\xff",
}

var fuzzParams = []string{
	"query", "start", "end", "step", "time", "timeout", "match[]", "limit", "lookback", "service", "operation",
	"tags", "minDuration", "maxDuration", "traceID", "spanKind", "filter", "receiver", "active", "silenced",
	"inhibited", "unprocessed", "q", "level", "trace_id", "severity", "refresh", "code", "endTs", "debug", "seconds",
	"metric", "dedup", "partial_response", "skip_head", "bucket", "groupBy", "search", "target", "kind",
	"instance", "version", "author", "message", "label.zone", "name", "from", "until", "type", "span_id", "label", "min_fraction",
}

var fuzzContentTypes = []string{
	"", "application/json", "application/x-protobuf", "application/x-www-form-urlencoded", "text/plain",
	"multipart/form-data; boundary=x", "application/json; charset=\xff",
}

// fuzzRequest is one randomly built request.
type fuzzRequest struct {
	method, path, query, contentType, encoding string
	body                                       []byte
}

func (f fuzzRequest) String() string {
	return fmt.Sprintf("%s %s?%.200s (Content-Type %q, Content-Encoding %q, %d-byte body %.80q)",
		f.method, f.path, f.query, f.contentType, f.encoding, len(f.body), f.body)
}

// mutate flips, cuts and splices bytes of a valid input, which reaches
// deeper into a decoder than random bytes do.
func mutate(rnd *rand.Rand, b []byte) []byte {
	b = slices.Clone(b)
	switch rnd.IntN(4) {
	case 0: // truncate
		if len(b) > 0 {
			b = b[:rnd.IntN(len(b))]
		}
	case 1: // flip bytes
		for range 1 + rnd.IntN(8) {
			if len(b) > 0 {
				b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
			}
		}
	case 2: // insert junk
		at := 0
		if len(b) > 0 {
			at = rnd.IntN(len(b))
		}
		junk := make([]byte, 1+rnd.IntN(64))
		for i := range junk {
			junk[i] = byte(rnd.IntN(256))
		}
		b = slices.Insert(b, at, junk...)
	default: // duplicate a slice
		if len(b) > 2 {
			i := rnd.IntN(len(b) - 1)
			j := i + 1 + rnd.IntN(len(b)-i-1)
			b = slices.Insert(b, j, b[i:j]...)
		}
	}
	return b
}

// fuzzSeeds are valid bodies the mutator starts from, OTLP traces in
// protobuf first.
func fuzzSeeds(t *testing.T) [][]byte {
	t.Helper()
	g := loadgen.New(3)
	td, _ := g.Traces(3, 3, time.Now())
	tp, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	tj, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	lj, err := plogotlp.NewExportRequestFromLogs(g.Logs(3, time.Now(), nil)).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	wr := g.WriteRequest("fuzz", 3, time.Now())
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	readReq, err := (&prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 0, EndTimestampMs: time.Now().UnixMilli(),
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}}}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	silence, _ := json.Marshal(map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "x", "isRegex": false}},
		"startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "fuzz", "comment": "fuzz",
	})
	alerts, _ := json.Marshal([]map[string]any{{"labels": map[string]string{"alertname": "Fuzz"}, "startsAt": now}})
	return [][]byte{tp, tj, lj, snappy.Encode(nil, raw), snappy.Encode(nil, readReq), silence, alerts, []byte("query=up")}
}

func randomFuzzRequest(rnd *rand.Rand, method, path string, seeds [][]byte) fuzzRequest {
	f := fuzzRequest{method: method, path: path}
	q := url.Values{}
	for range rnd.IntN(5) {
		q.Add(fuzzParams[rnd.IntN(len(fuzzParams))], fuzzValues[rnd.IntN(len(fuzzValues))])
	}
	f.query = q.Encode()
	if rnd.IntN(8) == 0 { // a raw, unescaped query string
		f.query = fuzzValues[rnd.IntN(len(fuzzValues))]
	}
	if method != http.MethodGet {
		switch rnd.IntN(3) {
		case 0:
			f.body = make([]byte, rnd.IntN(2048))
			for i := range f.body {
				f.body[i] = byte(rnd.IntN(256))
			}
		case 1:
			f.body = mutate(rnd, seeds[rnd.IntN(len(seeds))])
		default:
			f.body = slices.Clone(seeds[rnd.IntN(len(seeds))])
		}
		f.contentType = fuzzContentTypes[rnd.IntN(len(fuzzContentTypes))]
		switch rnd.IntN(6) {
		case 0:
			f.encoding = "gzip"
			if rnd.IntN(2) == 0 { // a valid gzip stream of the (maybe broken) body
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_, _ = zw.Write(f.body)
				_ = zw.Close()
				f.body = buf.Bytes()
			}
		case 1:
			f.encoding = "snappy"
		case 2:
			f.encoding = []string{"br", "deflate", "zstd", "gzip, gzip", "\xff"}[rnd.IntN(5)]
		}
	}
	return f
}

// TestReliabilityFuzzEveryRoute sends malformed and randomly mutated
// requests to every route the server lists (and the endpoints behind the
// API prefixes, and OTLP/HTTP): no request may crash the server or get a
// 5xx other than a retryable 503, and the server stays healthy throughout.
// The seed is logged, so a failure can be replayed.
func TestReliabilityFuzzEveryRoute(t *testing.T) {
	perRoute := 40
	if fullReliability() {
		perRoute = 400
	}
	s := startServer(t, t.TempDir(), "--enable-admin")
	var listing struct{ Data []string }
	if code := s.getJSON(t, "/-/routes", &listing); code != http.StatusOK || len(listing.Data) < 20 {
		t.Fatalf("GET /-/routes: %d, %d routes", code, len(listing.Data))
	}
	type target struct{ base, method, path string }
	var targets []target
	for _, pattern := range listing.Data {
		if strings.HasPrefix(pattern, "GET /debug/pprof/") && pattern != "GET /debug/pprof/" {
			continue // profiles run for seconds by design; their handlers are the standard library's
		}
		methods, path := routeRequests(pattern)
		paths := []string{path}
		if subs, ok := fuzzSubroutes[path]; ok {
			paths = append(paths, subs...)
		}
		for _, p := range paths {
			for _, m := range methods {
				targets = append(targets, target{s.httpURL, m, p})
				if !strings.Contains(pattern, " ") && m == http.MethodGet {
					targets = append(targets, target{s.httpURL, http.MethodPut, p})
				}
			}
		}
	}
	for _, p := range []string{"/v1/traces", "/v1/logs", "/v1/metrics", "/v1/unknown"} {
		targets = append(targets, target{s.otlpHTTPURL, http.MethodPost, p}, target{s.otlpHTTPURL, http.MethodGet, p})
	}

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("VIGIL_FUZZ_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("VIGIL_FUZZ_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (VIGIL_FUZZ_SEED=%d replays it); %d route/method pairs × %d requests", seed, seed, len(targets), perRoute)
	rnd := rand.New(rand.NewPCG(seed, 1))
	seeds := fuzzSeeds(t)
	client := &http.Client{Timeout: 30 * time.Second}
	codes := map[int]int{}
	failures := 0
	for _, tg := range targets {
		for range perRoute {
			f := randomFuzzRequest(rnd, tg.method, tg.path, seeds)
			u := tg.base + f.path
			if f.query != "" {
				u += "?" + f.query
			}
			req, err := http.NewRequestWithContext(t.Context(), f.method, u, bytes.NewReader(f.body))
			if err != nil {
				continue // not a request a client can send
			}
			if f.contentType != "" {
				req.Header.Set("Content-Type", f.contentType)
			}
			if f.encoding != "" {
				req.Header.Set("Content-Encoding", f.encoding)
			}
			// Same-origin, as the UI sends: the fuzz targets the handlers,
			// not the cross-origin guard in front of them.
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := client.Do(req)
			if err != nil {
				failures++
				t.Errorf("%v: %v", f, err)
				break
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			codes[resp.StatusCode]++
			retryable := resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
			if resp.StatusCode >= 500 && !retryable && !(tg.path == "/-/ready" && resp.StatusCode == http.StatusServiceUnavailable) {
				failures++
				t.Errorf("%v: HTTP %d: %.300s", f, resp.StatusCode, body)
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("vigil exited while fuzzing %s %s: %v", tg.method, tg.path, err)
		default:
		}
		if code := s.getJSON(t, "/-/healthy", nil); code != http.StatusOK {
			t.Fatalf("unhealthy after fuzzing %s %s: %d", tg.method, tg.path, code)
		}
		if failures > 2000 {
			t.Fatal("too many failures; stopping")
		}
	}
	t.Logf("status codes: %v", codes)
	if codes[http.StatusOK]+codes[http.StatusNoContent] == 0 || codes[http.StatusBadRequest] == 0 {
		t.Errorf("the fuzz reached no handler's success or its validation (codes %v)", codes)
	}
	fuzzGRPC(t, s, rnd, seeds, perRoute)
	// net/http survives a handler's panic by dropping the connection; a
	// panic after the answer was written would pass unseen above.
	if n := strings.Count(s.logs.String(), "panic"); n > 0 {
		t.Errorf("%d panics in the server's log", n)
	}
}

// fuzzGRPC sends random and mutated messages to each OTLP/gRPC service: the
// answer is OK, INVALID_ARGUMENT, or a retryable refusal, never INTERNAL or
// UNKNOWN, and the server stays up.
func fuzzGRPC(t *testing.T, s *server, rnd *rand.Rand, seeds [][]byte, perMethod int) {
	t.Helper()
	conn, err := grpc.NewClient(s.grpcA, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tp := seeds[0] // fuzzSeeds starts with OTLP traces in protobuf
	lp, err := plogotlp.NewExportRequestFromLogs(loadgen.New(5).Logs(3, time.Now(), nil)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("fuzz_gauge")
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	m.Gauge().DataPoints().At(0).SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	mp, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[grpccodes.Code]int{}
	for _, target := range []struct {
		method string
		seed   []byte
	}{
		{"/opentelemetry.proto.collector.trace.v1.TraceService/Export", tp},
		{"/opentelemetry.proto.collector.logs.v1.LogsService/Export", lp},
		{"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", mp},
	} {
		for range perMethod {
			var body []byte
			switch rnd.IntN(3) {
			case 0:
				body = slices.Clone(target.seed)
			case 1:
				body = mutate(rnd, target.seed)
			default:
				body = mutate(rnd, seeds[rnd.IntN(len(seeds))])
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			err := conn.Invoke(ctx, target.method, &body, new([]byte), grpc.ForceCodecV2(bytesCodec{}))
			cancel()
			code := status.Code(err)
			codes[code]++
			switch code {
			case grpccodes.OK, grpccodes.InvalidArgument, grpccodes.Unavailable, grpccodes.ResourceExhausted:
			default:
				t.Errorf("%s with %d bytes %.80q: %v", target.method, len(body), body, err)
			}
		}
	}
	// A message over limits.max_request_bytes is refused before decoding,
	// compressed (a bomb: 64 MiB of zeros in 64 KiB) or not.
	huge := make([]byte, 64<<20)
	for _, compressed := range []bool{false, true} {
		opts := []grpc.CallOption{grpc.ForceCodecV2(bytesCodec{})}
		if compressed {
			opts = append(opts, grpc.UseCompressor(grpcgzip.Name))
		}
		err := conn.Invoke(t.Context(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &huge, new([]byte), opts...)
		if status.Code(err) != grpccodes.ResourceExhausted {
			t.Errorf("64 MiB message (gzip %v): %v, want RESOURCE_EXHAUSTED", compressed, err)
		}
	}
	t.Logf("gRPC status codes: %v", codes)
	if codes[grpccodes.OK] == 0 || codes[grpccodes.InvalidArgument] == 0 {
		t.Errorf("the gRPC fuzz reached no success or no validation (codes %v)", codes)
	}
}

// bytesCodec sends a *[]byte as the message as it is.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }
