package vigil

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// receiver is an in-process OTLP/gRPC endpoint that keeps what it gets.
type receiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	logs  []*collogs.ExportLogsServiceRequest
	svc   []string
}

func (r *receiver) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				r.svc = append(r.svc, a.Value.GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

type logsReceiver struct {
	collogs.UnimplementedLogsServiceServer
	r *receiver
}

func (l logsReceiver) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	l.r.logs = append(l.r.logs, req)
	return &collogs.ExportLogsServiceResponse{}, nil
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	s := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(s, r)
	collogs.RegisterLogsServiceServer(s, logsReceiver{r: r})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return r, ln.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func noEnv(string) string { return "" }

func TestStartWiresTracesLogsMetricsAndHealth(t *testing.T) {
	rec, addr := startReceiver(t)
	var out lockedBuffer
	svc, err := Start(t.Context(), Config{
		ServiceName: "shop-test", ServiceVersion: "1.2.3", Revision: "abc",
		Endpoint: addr, LogOutput: &out, getenv: noEnv,
	})
	if err != nil {
		t.Fatal(err)
	}

	downstream := httptest.NewServer(svc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "stock: 3")
	})))
	defer downstream.Close()
	client := svc.HTTPClient()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		svc.Logger.InfoContext(r.Context(), "item requested", "id", r.PathValue("id"), "password", "hunter2")
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.URL+"/stock", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		_, _ = io.WriteString(w, "ok")
	})
	svc.Mount(mux)
	front := httptest.NewServer(svc.Middleware(mux))
	defer front.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Run = %d, want 503 (not ready during start-up)", code)
	}
	if code, body := get("/items/42"); code != 200 {
		t.Fatalf("/items/42 = %d %s", code, body)
	}
	_, metricsText := get("/metrics")
	for _, want := range []string{
		`http_server_request_duration_seconds_count{method="GET",route="/items/{id}",status_code="200"} 1`,
		`shop_test_build_info{goversion="go`,
		`version="1.2.3"`,
		`go_goroutines`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Shutdown flushes every buffered span and log record.
	if err := svc.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, sp := range rec.spans {
		byName[sp.Name] = sp
	}
	server, ok := byName["GET /items/{id}"]
	if !ok {
		t.Fatalf("no server span named by the route template; got %v", names(rec.spans))
	}
	var clientSpan, downSpan *tracepb.Span
	for _, sp := range rec.spans {
		switch {
		case sp.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			clientSpan = sp
		case sp.Kind == tracepb.Span_SPAN_KIND_SERVER && sp != server && !strings.Contains(sp.Name, "metrics") && !strings.Contains(sp.Name, "readyz"):
			downSpan = sp
		}
	}
	if clientSpan == nil || downSpan == nil {
		t.Fatalf("want a client span and a downstream server span; got %v", names(rec.spans))
	}
	if !bytes.Equal(clientSpan.TraceId, server.TraceId) || !bytes.Equal(clientSpan.ParentSpanId, server.SpanId) {
		t.Error("the client span is not a child of the server span")
	}
	if !bytes.Equal(downSpan.TraceId, server.TraceId) || !bytes.Equal(downSpan.ParentSpanId, clientSpan.SpanId) {
		t.Error("the downstream server span is not a child of the client span: context was not propagated")
	}
	for _, s := range rec.svc {
		if s != "shop-test" {
			t.Errorf("resource service.name = %q", s)
		}
	}

	var exported int
	for _, req := range rec.logs {
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					if lr.Body.GetStringValue() != "item requested" {
						continue
					}
					exported++
					if !bytes.Equal(lr.TraceId, server.TraceId) {
						t.Error("exported log record does not carry the request's trace id")
					}
					for _, a := range lr.Attributes {
						if a.Key == "password" && a.Value.GetStringValue() != "[REDACTED]" {
							t.Errorf("exported password = %q", a.Value.GetStringValue())
						}
					}
				}
			}
		}
	}
	if exported != 1 {
		t.Errorf("%d exported log records, want 1", exported)
	}

	var line map[string]any
	for l := range strings.Lines(out.String()) {
		if strings.Contains(l, "item requested") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["trace_id"] != hex.EncodeToString(server.TraceId) || line["service"] != "shop-test" || line["password"] != "[REDACTED]" {
		t.Errorf("stdout log line = %v; want the trace id, the service and a redacted password", line)
	}
}

func names(spans []*tracepb.Span) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name)
	}
	return n
}

func TestSelfCheckWarns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens here now
	var out lockedBuffer
	svc, err := Start(t.Context(), Config{Endpoint: dead, LogOutput: &out, getenv: noEnv, SelfCheckTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx) // the endpoint is down; flushing may fail
	}()
	logs := out.String()
	for _, want := range []string{"no service name", "OTLP endpoint unreachable", dead} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up warnings lack %q:\n%s", want, logs)
		}
	}
}

func TestResolveTarget(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name     string
		cfg      Config
		env      map[string]string
		protocol string
		endpoint string
		err      bool
	}{
		{"defaults", Config{}, nil, ProtocolGRPC, "http://localhost:4317", false},
		{"http default port", Config{Protocol: ProtocolHTTP}, nil, ProtocolHTTP, "http://localhost:4318", false},
		{"env", Config{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ProtocolHTTP, "https://otel:4317", false},
		{"code wins over env", Config{Endpoint: "vigil:4317", Protocol: ProtocolGRPC}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:1"}, ProtocolGRPC, "http://vigil:4317", false},
		{"bad protocol", Config{Protocol: "http/json"}, nil, "", "", true},
		{"bad endpoint", Config{Endpoint: "ftp://x:1"}, nil, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveTarget(tc.cfg, env(tc.env))
			if tc.err {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil || got.protocol != tc.protocol || got.endpoint != tc.endpoint {
				t.Fatalf("got %+v, %v; want %s %s", got, err, tc.protocol, tc.endpoint)
			}
		})
	}
}

func TestRunDrainsAndFlushes(t *testing.T) {
	rec, addr := startReceiver(t)
	var out lockedBuffer
	svc, err := Start(t.Context(), Config{ServiceName: "run-test", Endpoint: addr, LogOutput: &out, getenv: noEnv, ShutdownGrace: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := ln.Addr().String()
	ln.Close()
	mux := http.NewServeMux()
	svc.Mount(mux)
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "done") })
	stop := make(chan struct{})
	notify := func(ctx context.Context) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(ctx)
		go func() { <-stop; cancel() }()
		return ctx, cancel
	}
	done := make(chan error, 1)
	go func() { done <- svc.run(t.Context(), []*http.Server{svc.NewServer(srvAddr, mux)}, notify) }()

	var resp *http.Response
	for range 200 {
		if resp, err = http.Get("http://" + srvAddr + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("never ready: %v", err)
	}
	if resp, err = http.Get("http://" + srvAddr + "/work"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	found := false
	for _, sp := range rec.spans {
		found = found || sp.Name == "GET /work"
	}
	if !found {
		t.Errorf("the span of the last request was not flushed at shutdown: %v", names(rec.spans))
	}
	if svc.Health.Check(t.Context()).Status == "" {
		t.Error("health report empty")
	}
	// The logger names the service on every record; Run's own records must
	// not name it a second time (duplicate JSON keys).
	logged := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(line, `"msg":"serving"`) && !strings.Contains(line, `"msg":"stopped serving`) {
			continue
		}
		logged++
		if n := strings.Count(line, `"service":`); n != 1 {
			t.Errorf("%d service keys in %s", n, line)
		}
	}
	if logged != 2 {
		t.Errorf("want the serving and stopped serving records, got %d:\n%s", logged, out.String())
	}
}

// TestRunBindsAllOrNone: when one server's port is taken, Run fails at
// once and leaves none of the others' ports bound.
func TestRunBindsAllOrNone(t *testing.T) {
	svc, err := Start(t.Context(), Config{ServiceName: "bind-test", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = svc.Run(t.Context(), svc.NewServer(freeAddr, http.NewServeMux()), svc.NewServer(taken.Addr().String(), http.NewServeMux()))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run with a port in use: %v", err)
	}
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("the first server's port stayed bound: %v", err)
	}
	ln.Close()
}

// TestServeUsesCallersListeners: Serve serves on listeners bound before it
// was called and refuses a count that does not match the servers.
func TestServeUsesCallersListeners(t *testing.T) {
	svc, err := Start(t.Context(), Config{ServiceName: "serve-test", Endpoint: "127.0.0.1:1", LogOutput: io.Discard, getenv: noEnv, ShutdownGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	if err := svc.Serve(t.Context(), nil, svc.NewServer("", http.NewServeMux())); err == nil {
		t.Fatal("Serve with no listener for a server: no error")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Mount(mux)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	// Addr is empty: only the listener can make the server reachable.
	go func() { done <- svc.Serve(ctx, []net.Listener{ln}, svc.NewServer("", mux)) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/livez through the caller's listener: HTTP %d", resp.StatusCode)
	}
	cancel()
	<-done
}

// TestRunFlushIsBounded: with the collector gone, Run still returns within
// about FlushTimeout instead of the exporters' whole retry schedule.
func TestRunFlushIsBounded(t *testing.T) {
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(collector, &receiver{})
	go func() { _ = collector.Serve(cln) }()
	addr := cln.Addr().String()
	var out lockedBuffer
	svc, err := Start(t.Context(), Config{ServiceName: "flush-test", Endpoint: addr, LogOutput: &out, getenv: noEnv,
		ShutdownGrace: time.Millisecond, FlushTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, span := svc.TracerProvider.Tracer("t").Start(t.Context(), "buffered")
	span.End()
	// The collector goes away with a span still buffered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := ln.Addr().String()
	ln.Close()
	collector.Stop()
	stop := make(chan struct{})
	notify := func(ctx context.Context) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(ctx)
		go func() { <-stop; cancel() }()
		return ctx, cancel
	}
	done := make(chan error, 1)
	go func() {
		done <- svc.run(t.Context(), []*http.Server{svc.NewServer(srvAddr, http.NewServeMux())}, notify)
	}()
	close(stop)
	select {
	case err := <-done:
		if err == nil {
			t.Error("flushing to a vanished collector should report an error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return: the final flush is not bounded by FlushTimeout")
	}
}
