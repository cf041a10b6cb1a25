package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The histogram buckets must stay cumulative (never fewer at a larger le)
// and every counter and bucket must never decrease, or rate() and
// histogram_quantile would read resets and nonsense in every system.
func TestStreamValuesAreValidCountersAndHistograms(t *testing.T) {
	s := newRWStream(2 * seriesPerHost)
	if len(s.labels) != 2*seriesPerHost {
		t.Fatalf("series = %d, want %d", len(s.labels), 2*seriesPerHost)
	}
	vals := make([]float64, len(s.labels))
	for pass := range 50 {
		prev := append([]float64(nil), vals...)
		for i := range vals {
			vals[i] = s.value(i, pass, vals[i])
			if s.kind[i] != kindGauge && vals[i] < prev[i] {
				t.Fatalf("pass %d series %d (%v) decreased: %v -> %v", pass, i, s.labels[i], prev[i], vals[i])
			}
		}
		for i := range vals {
			if s.kind[i] != kindBucket || s.kind[i-1] != kindBucket {
				continue
			}
			if vals[i] < vals[i-1] {
				t.Fatalf("pass %d: bucket %v = %v below the smaller bucket %v = %v", pass, s.labels[i], vals[i], s.labels[i-1], vals[i-1])
			}
		}
	}
	// The +Inf bucket of a histogram counts every observation, so it
	// grows every pass.
	for i, l := range s.labels {
		for _, x := range l {
			if x.Name == "le" && x.Value == "+Inf" && vals[i] < 50*5 {
				t.Errorf("+Inf bucket %v = %v after 50 passes of at least 5 observations", l, vals[i])
			}
		}
	}
}

func TestMetricSumsMatchingSeries(t *testing.T) {
	body := `# HELP otelcol_exporter_sent_spans_total spans
# TYPE otelcol_exporter_sent_spans_total counter
otelcol_exporter_sent_spans_total{exporter="jaeger_storage_exporter",service_name="jaeger"} 1200
otelcol_exporter_sent_spans_total{exporter="debug"} 7
vigil_stored_total{signal="traces"} 1.5e+06
vigil_stored_total_extra{signal="traces"} 3
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	h := &harness{client: srv.Client()}
	tests := []struct {
		names  []string
		labels []string
		want   float64
		err    error
	}{
		{[]string{"otelcol_exporter_sent_spans", "otelcol_exporter_sent_spans_total"}, []string{`exporter="jaeger_storage_exporter"`}, 1200, nil},
		{[]string{"otelcol_exporter_sent_spans_total"}, nil, 1207, nil},
		{[]string{"vigil_stored_total"}, []string{`signal="traces"`}, 1.5e6, nil},
		{[]string{"vigil_stored_total"}, []string{`signal="logs"`}, 0, errNoSeries},
	}
	for _, tt := range tests {
		got, err := h.metric(srv.URL, tt.names, tt.labels...)
		if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
			t.Errorf("metric(%v, %v) = %v, %v; want %v, %v", tt.names, tt.labels, got, err, tt.want, tt.err)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	med, p95 := quantiles(ds)
	if med != 51*time.Millisecond || p95 != 95*time.Millisecond {
		t.Errorf("median, p95 = %v, %v; want 51ms, 95ms", med, p95)
	}
	if med, p95 := quantiles(nil); med != 0 || p95 != 0 {
		t.Errorf("no samples: %v, %v", med, p95)
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[float64]string{0: "–", 7: "7", 1234: "1,234", 1234567.4: "1,234,567", 100000: "100,000"} {
		if got := num(in); got != want {
			t.Errorf("num(%s) = %q, want %q", strconv.FormatFloat(in, 'f', -1, 64), got, want)
		}
	}
}

func TestGoModuleVersion(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is a Go build of this module.
	if v := goModuleVersion(self); !strings.Contains(v, "vigil") || !strings.HasSuffix(v, "("+runtime.Version()+")") {
		t.Errorf("goModuleVersion(test binary) = %q", v)
	}
	notGo := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v := goModuleVersion(notGo); v != "" {
		t.Errorf("goModuleVersion(shell script) = %q, want empty", v)
	}
}

// TestRatioGoals: a row worse than its peer is a loss unless issue 19's
// goal for it allows it, and only then.
func TestRatioGoals(t *testing.T) {
	for _, c := range []struct {
		what, peer   string
		v, p         float64
		loss, within bool
	}{
		{"metrics: peak RSS above idle per active series (bytes)", "VictoriaMetrics", 3000, 2100, false, true}, // 1.43×
		{"metrics: peak RSS above idle per active series (bytes)", "VictoriaMetrics", 3779, 2108, true, false}, // 1.79×
		{"metrics: peak RSS above idle per active series (bytes)", "Prometheus", 3779, 3600, false, false},     // 1.05×: noise
		{"metrics: peak RSS above idle per active series (bytes)", "Prometheus", 3779, 3400, true, false},
		{"metrics: RSS before the load (idle)", "Prometheus", 58 << 20, 41 << 20, false, true},
		{"metrics: RSS before the load (idle)", "Prometheus", 80 << 20, 41 << 20, true, false},
		{"metrics: RSS before the load (idle)", "VictoriaMetrics", 58 << 20, 20 << 20, false, true},
		{"metrics: peak RSS", "VictoriaMetrics", 419, 222, false, true},
		{"metrics: peak RSS", "Prometheus", 419, 395, true, false},
		{"metrics: bytes on disk per sample", "VictoriaMetrics", 7.4, 0.69, false, true},
		{"metrics: bytes on disk per sample", "Prometheus", 7.4, 6.9, true, false},
		{"logs: peak RSS", "VictoriaLogs", 439, 148, true, false},
	} {
		r := &report{}
		cell := r.ratio(c.what, c.peer, lower, c.v, c.p)
		if got := len(r.losses) == 1; got != c.loss {
			t.Errorf("%s / %s: loss %v, want %v (%q)", c.what, c.peer, got, c.loss, r.losses)
		}
		if got := len(r.withinGoals) == 1; got != c.within {
			t.Errorf("%s / %s: within goal %v, want %v (%q)", c.what, c.peer, got, c.within, r.withinGoals)
		}
		if c.within && !strings.HasSuffix(cell, "(worse, within its goal)") {
			t.Errorf("%s / %s: cell %q", c.what, c.peer, cell)
		}
	}
}
