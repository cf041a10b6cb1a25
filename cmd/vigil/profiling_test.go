package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/grafana/pyroscope-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// burnSink keeps burnCPU's loop from being optimised away.
var burnSink uint64

// burnCPU spins for d in its own frame, calling nothing, so that it is
// the innermost frame of every CPU sample taken while it runs.
//
//go:noinline
func burnCPU(d time.Duration) {
	x := uint64(88172645463325252)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 100_000 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	burnSink += x
}

// pyroscopeLog collects what pyroscope-go logs as errors: a refused
// upload is one.
type pyroscopeLog struct {
	mu     sync.Mutex
	errors []string
}

func (l *pyroscopeLog) Infof(string, ...any)  {}
func (l *pyroscopeLog) Debugf(string, ...any) {}
func (l *pyroscopeLog) Errorf(f string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, fmt.Sprintf(f, args...))
}

// TestProfilingLinkedToSpans is issue 21's first "done when": this test
// process profiles itself with pyroscope-go, traced with the OpenTelemetry
// SDK wrapped by otel-profiling-go, burns CPU inside a span, and reads
// back from vigil the profile of that span alone, whose top function is
// the burner, found through the span's pyroscope.profile.id; the export
// opens with go tool pprof.
func TestProfilingLinkedToSpans(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	ctx := t.Context()
	const service = "profiling-e2e"

	plog := &pyroscopeLog{}
	profiler, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: service,
		ServerAddress:   s.httpURL,
		Tags:            map[string]string{"env": "test"},
		Logger:          plog,
		UploadRate:      time.Minute, // the test flushes
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
			pyroscope.ProfileMutexCount, pyroscope.ProfileMutexDuration,
			pyroscope.ProfileBlockCount, pyroscope.ProfileBlockDuration,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = profiler.Stop()
		}
	}()

	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.otlpHTTPURL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	tracer := otelpyroscope.NewTracerProvider(sdk).Tracer("e2e")

	// Some CPU outside any span, so that the span filter has something to
	// leave out.
	burnOutside(300 * time.Millisecond)
	spanCtx, span := tracer.Start(ctx, "burn")
	burnCPU(2 * time.Second)
	span.End()
	_ = spanCtx
	spanID := span.SpanContext().SpanID().String()
	traceID := span.SpanContext().TraceID().String()

	profiler.Flush(true)
	if err := profiler.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := sdk.Shutdown(ctx); err != nil {
		t.Fatalf("trace export: %v", err)
	}
	plog.mu.Lock()
	if len(plog.errors) > 0 {
		t.Errorf("pyroscope-go logged errors (refused uploads):\n%s", strings.Join(plog.errors, "\n"))
	}
	plog.mu.Unlock()

	// The span says which profile holds its samples.
	var tr struct {
		Data []struct {
			Spans []struct {
				SpanID string `json:"spanID"`
				Tags   []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/traces/"+traceID, &tr); code != http.StatusOK || len(tr.Data) != 1 || len(tr.Data[0].Spans) != 1 {
		t.Fatalf("trace %s: HTTP %d, %+v", traceID, code, tr)
	}
	profileID := ""
	for _, tag := range tr.Data[0].Spans[0].Tags {
		if tag.Key == "pyroscope.profile.id" {
			profileID = fmt.Sprint(tag.Value)
		}
	}
	if profileID != spanID {
		t.Fatalf("span %s has pyroscope.profile.id %q, want its span id", spanID, profileID)
	}

	// Every kind pyroscope-go sent was stored.
	var svcs struct {
		Data []struct {
			Service string   `json:"service"`
			Kinds   []string `json:"kinds"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/v1/profiles/services", &svcs); code != http.StatusOK || len(svcs.Data) != 1 ||
		svcs.Data[0].Service != service || strings.Join(svcs.Data[0].Kinds, ",") != "block,cpu,goroutine,memory,mutex" {
		t.Errorf("profiled services: HTTP %d, %+v", code, svcs.Data)
	}

	export := func(q url.Values) []byte {
		t.Helper()
		resp, err := http.Get(s.httpURL + "/api/v1/profiles/export?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("export %s: HTTP %d %s", q.Encode(), resp.StatusCode, body)
		}
		return body
	}
	window := url.Values{
		"service": {service}, "type": {"cpu"}, "label": {"env=test"},
		"start": {fmt.Sprint(time.Now().Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(time.Now().Add(time.Minute).Unix())},
	}
	spanQ := url.Values{"span_id": {profileID}}
	for k, v := range window {
		spanQ[k] = v
	}
	raw := export(spanQ)
	p, err := profile.ParseData(raw)
	if err != nil {
		t.Fatalf("the span's profile is not a pprof: %v", err)
	}
	if len(p.Sample) == 0 {
		t.Fatal("the span's profile has no samples")
	}
	self := map[string]int64{}
	var top string
	for _, smp := range p.Sample {
		if !smp.HasLabel("span_id", spanID) {
			t.Errorf("a sample of another span: %v", smp.Label)
		}
		fn := smp.Location[0].Line[0].Function.Name
		self[fn] += smp.Value[0]
		if top == "" || self[fn] > self[top] {
			top = fn
		}
	}
	if !strings.HasSuffix(top, ".burnCPU") {
		t.Errorf("top function of the span's profile is %s, want burnCPU; self values: %v", top, self)
	}
	if _, ok := self[burnOutsideName]; ok {
		t.Errorf("the span's profile holds samples of %s, which ran outside the span", burnOutsideName)
	}
	// Without the span filter, the CPU burnt outside the span is there.
	whole, err := profile.ParseData(export(window))
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Sample) <= len(p.Sample) {
		t.Errorf("the service's profile has %d samples, the span's %d: the filter left nothing out", len(whole.Sample), len(p.Sample))
	}

	// The top API agrees.
	var topAns struct {
		Status string `json:"status"`
		Data   struct {
			Functions []struct {
				Name string `json:"name"`
				Self int64  `json:"self"`
			} `json:"functions"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/v1/profiles/top?"+spanQ.Encode(), &topAns); code != http.StatusOK || topAns.Status != "success" ||
		len(topAns.Data.Functions) == 0 || !strings.HasSuffix(topAns.Data.Functions[0].Name, ".burnCPU") {
		t.Errorf("top of the span: HTTP %d %+v", code, topAns)
	}

	// go tool pprof opens the export.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run go tool pprof with")
	}
	file := filepath.Join(t.TempDir(), "span.pb.gz")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmdCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cmdCtx, goBin, "tool", "pprof", "-top", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	t.Logf("go tool pprof -top of the span's profile:\n%s", out)
	if !strings.Contains(string(out), "burnCPU") || !strings.Contains(string(out), "Type: cpu") {
		t.Errorf("go tool pprof -top does not show burnCPU:\n%s", out)
	}
}

const burnOutsideName = "github.com/vigil-observability/vigil/cmd/vigil.burnOutside"

// burnOutside burns CPU outside any span, in a frame of its own.
//
//go:noinline
func burnOutside(d time.Duration) {
	x := uint64(7)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 100_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	burnSink += x
}

// On ClickHouse profiles are shared: one node takes an upload, the other
// serves it.
func TestProfilesOnClickHouse(t *testing.T) {
	ch := chtest.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "storage:\n  backend: clickhouse\n  clickhouse:\n    dsn: %s\n", ch.DSN("vigil")), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startServer(t, filepath.Join(dir, "a"), "--config", cfg)
	b := startServer(t, filepath.Join(dir, "b"), "--config", cfg)

	prof := storagetest.PprofBytes(t, []string{"samples", "cpu"},
		storagetest.ProfileSample{Stack: []string{"main.hot", "main.main"}, Values: []int64{9, 90_000_000}, SpanID: "00000000000000c1"},
		storagetest.ProfileSample{Stack: []string{"main.cold", "main.main"}, Values: []int64{1, 10_000_000}},
	)
	now := time.Now()
	q := url.Values{"name": {"ch-shop{env=prod}"}, "from": {fmt.Sprint(now.Add(-10 * time.Second).Unix())}, "until": {fmt.Sprint(now.Unix())}}
	resp, err := http.Post(a.httpURL+"/ingest?"+q.Encode(), "application/octet-stream", bytes.NewReader(prof))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload to node a: HTTP %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(b.httpURL + "/api/v1/profiles/export?service=ch-shop&type=cpu&span_id=00000000000000c1&label=env%3Dprod")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export from node b: HTTP %d %s", resp.StatusCode, raw)
	}
	p, err := profile.ParseData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 1 || p.Sample[0].Location[0].Line[0].Function.Name != "main.hot" || p.Sample[0].Value[0] != 90_000_000 {
		t.Errorf("the span's profile from node b:\n%v", p)
	}
}
