package embedded

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

func TestOpenMetricsWALReplay(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	db, err := OpenMetrics(MetricsOptions{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now().UnixMilli()
	floatSeries := labels.FromStrings("__name__", "vigil_test_requests_total", "job", "replay")
	histSeries := labels.FromStrings("__name__", "vigil_test_latency_seconds", "job", "replay")
	h := &histogram.Histogram{
		Schema: 0, Count: 3, Sum: 4.5, ZeroThreshold: 0.001,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{1, 1}, // absolute counts 1, 2
	}
	app := db.AppenderV2(t.Context())
	for i := range 10 {
		if _, err := app.Append(0, floatSeries, 0, now+int64(i)*1000, float64(i), nil, nil, storage.AOptions{}); err != nil {
			t.Fatalf("append float %d: %v", i, err)
		}
	}
	if _, err := app.Append(0, histSeries, 0, now, 0, h, nil, storage.AOptions{}); err != nil {
		t.Fatalf("append histogram: %v", err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	if got := gaugeValue(t, reg, "vigil_storage_bytes"); got <= 0 {
		t.Errorf("vigil_storage_bytes{store=\"tsdb\"} = %v, want > 0 after a commit wrote the WAL", got)
	}
	if n, err := testutil.GatherAndCount(reg, "prometheus_tsdb_head_series"); err != nil || n != 1 {
		t.Errorf("prometheus_tsdb_head_series registered %d times (err %v), want 1", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A fresh registry: the TSDB registers its metrics again on open.
	db, err = OpenMetrics(MetricsOptions{Dir: dir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	floats := selectSeries(t, q, "vigil_test_requests_total")
	if len(floats) != 10 {
		t.Fatalf("after reopen got %d float samples, want 10: %v", len(floats), floats)
	}
	for i, s := range floats {
		if s.t != now+int64(i)*1000 || s.v != float64(i) {
			t.Errorf("sample %d = (%d, %v), want (%d, %v)", i, s.t, s.v, now+int64(i)*1000, float64(i))
		}
	}
	hs := selectSeries(t, q, "vigil_test_latency_seconds")
	if len(hs) != 1 || hs[0].h == nil || hs[0].h.Count != 3 || hs[0].h.Sum != 4.5 {
		t.Fatalf("after reopen histogram samples = %+v, want one with count 3 sum 4.5", hs)
	}
}

func TestOpenMetricsOutOfOrderWindow(t *testing.T) {
	tests := []struct {
		name    string
		window  time.Duration
		lateBy  time.Duration
		wantErr error
	}{
		{name: "default window accepts a late sample", window: 0, lateBy: 5 * time.Minute},
		{name: "default window refuses a sample beyond it", window: 0, lateBy: 20 * time.Minute, wantErr: storage.ErrTooOldSample},
		{name: "disabled window refuses any late sample", window: -1, lateBy: time.Minute, wantErr: storage.ErrOutOfOrderSample},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := OpenMetrics(MetricsOptions{Dir: t.TempDir(), OutOfOrderTimeWindow: tc.window})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			ls := labels.FromStrings("__name__", "ooo_test")
			now := time.Now().UnixMilli()
			app := db.AppenderV2(t.Context())
			if _, err := app.Append(0, ls, 0, now, 1, nil, nil, storage.AOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			app = db.AppenderV2(t.Context())
			_, err = app.Append(0, ls, 0, now-tc.lateBy.Milliseconds(), 2, nil, nil, storage.AOptions{})
			if tc.wantErr == nil && err != nil {
				t.Fatalf("late append: %v, want accepted", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("late append error = %v, want %v", err, tc.wantErr)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenMetricsRequiresDir(t *testing.T) {
	if _, err := OpenMetrics(MetricsOptions{}); err == nil {
		t.Fatal("OpenMetrics without Dir succeeded, want an error")
	}
}

type sample struct {
	t int64
	v float64
	h *histogram.Histogram
}

func selectSeries(t *testing.T, q storage.Querier, name string) []sample {
	t.Helper()
	ss := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []sample
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out = append(out, sample{t: ts, v: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				out = append(out, sample{t: ts, h: h})
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gaugeValue gathers reg and returns the value of the single
// name{store="tsdb"} gauge.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s has %d series, want 1", name, len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "store" || m.GetLabel()[0].GetValue() != "tsdb" {
			t.Fatalf("%s labels = %v, want store=\"tsdb\"", name, m.GetLabel())
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s not registered", name)
	return 0
}

// TestOpenMetricsMmapsFullChunks checks that full head chunks leave the heap
// for the memory-mapped chunk files at ChunkMmapInterval, not at the TSDB's
// default minute: at a high sample rate the chunks waiting for the pass
// were the largest part of the heap.
func TestOpenMetricsMmapsFullChunks(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, err := OpenMetrics(MetricsOptions{Dir: t.TempDir(), Registerer: reg, ChunkMmapInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// 600 samples a second apart fill several 120-sample chunks.
	ls := labels.FromStrings("__name__", "vigil_test_gauge", "job", "mmap")
	start := time.Now().Add(-time.Hour).UnixMilli()
	app := db.AppenderV2(t.Context())
	for i := range 600 {
		if _, err := app.Append(0, ls, 0, start+int64(i)*1000, float64(i), nil, nil, storage.AOptions{}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	mmapped := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "prometheus_tsdb_mmap_chunks_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("prometheus_tsdb_mmap_chunks_total not registered")
		return 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for mmapped() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no head chunk m-mapped within 10 s with ChunkMmapInterval 1s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
