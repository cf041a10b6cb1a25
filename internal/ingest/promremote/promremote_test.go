package promremote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/metricmeta"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func series(name string, kv ...string) []prompb.Label {
	out := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func encode(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func post(h http.Handler, body []byte, mutate func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if mutate != nil {
		mutate(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

type point struct {
	t int64
	v float64
	h *histogram.Histogram
}

// readSeries returns every sample of the series named name, keyed by its
// labels' string form.
func readSeries(t testing.TB, db storage.Queryable, name string) map[string][]point {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	out := map[string][]point{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out[s.Labels().String()] = append(out[s.Labels().String()], point{t: ts, v: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				out[s.Labels().String()] = append(out[s.Labels().String()], point{t: ts, h: h})
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func nativeHistogram() prompb.Histogram {
	h := &histogram.Histogram{
		Schema: 1, Count: 5, Sum: 12.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{2, 0}, // absolute 2, 2
	}
	return prompb.FromIntHistogram(0, h)
}

func TestHandlerRequests(t *testing.T) {
	now := time.Now().UnixMilli()
	tooOld := now - (30 * time.Minute).Milliseconds() // beyond the OOO window, within MaxPastAge
	badHist := nativeHistogram()
	badHist.PositiveDeltas = []int64{2} // spans need two buckets
	badHist.Timestamp = now

	tests := []struct {
		name string
		// prior is written (and must succeed) before body.
		prior      *prompb.WriteRequest
		body       func(t *testing.T) []byte
		mutate     func(*http.Request)
		wantCode   int
		wantInBody []string
		// want maps a series name to its expected sample count afterwards.
		want         map[string]int
		wantStored   float64
		wantRejected map[string]float64
	}{
		{
			name: "floats, native histogram and exemplar stored",
			body: func(t *testing.T) []byte {
				h := nativeHistogram()
				h.Timestamp = now
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{
						Labels:    series("http_requests_total", "job", "api", "code", "200"),
						Samples:   []prompb.Sample{{Timestamp: now - 1000, Value: 1}, {Timestamp: now, Value: 2}},
						Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 2, Timestamp: now}},
					},
					{Labels: series("http_latency_seconds", "job", "api"), Histograms: []prompb.Histogram{h}},
				}})
			},
			wantCode:   http.StatusNoContent,
			want:       map[string]int{"http_requests_total": 2, "http_latency_seconds": 1},
			wantStored: 3,
		},
		{
			name: "metadata-only request",
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "up"}}})
			},
			wantCode: http.StatusNoContent,
		},
		{
			name: "invalid series refused, the rest stored",
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: []prompb.Label{{Name: "job", Value: "nameless"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}, {Timestamp: now + 1, Value: 1}}},
					{Labels: series("bad_utf8", "v", "\xff"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
					{Labels: series("long_value", "v", strings.Repeat("x", 101)), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
					{Labels: series("good", "job", "x"), Samples: []prompb.Sample{{Timestamp: now, Value: 7}}},
				}})
			},
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"4 samples rejected", "3 invalid_label", "1 label_value_too_long", "1 of 5 samples stored"},
			want:         map[string]int{"good": 1, "bad_utf8": 0, "long_value": 0},
			wantStored:   1,
			wantRejected: map[string]float64{limits.ReasonInvalidLabel: 3, limits.ReasonLabelValueTooLong: 1},
		},
		{
			name:  "out of order samples skipped, good ones committed",
			prior: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("ooo", "job", "x"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}}},
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: series("ooo", "job", "x"), Samples: []prompb.Sample{
						{Timestamp: tooOld, Value: 9},       // older than the OOO window
						{Timestamp: now, Value: 2},          // duplicate timestamp, other value
						{Timestamp: now - 60_000, Value: 3}, // inside the window: accepted
						{Timestamp: now + 1000, Value: 4},
					}},
				}})
			},
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"2 samples rejected: 2 out_of_order", "2 of 4 samples stored"},
			want:         map[string]int{"ooo": 3},
			wantStored:   1 + 2,
			wantRejected: map[string]float64{limits.ReasonOutOfOrder: 2},
		},
		{
			name: "timestamps outside the accepted range",
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: series("range"), Samples: []prompb.Sample{
						{Timestamp: now + (2 * time.Hour).Milliseconds(), Value: 1},
						{Timestamp: now - (8 * 24 * time.Hour).Milliseconds(), Value: 1},
						{Timestamp: 0, Value: 1},
						{Timestamp: now, Value: 1},
					}},
				}})
			},
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"3 samples rejected", "2 timestamp_too_old", "1 timestamp_in_future"},
			want:         map[string]int{"range": 1},
			wantStored:   1,
			wantRejected: map[string]float64{limits.ReasonTimestampTooOld: 2, limits.ReasonTimestampInFuture: 1},
		},
		{
			name: "invalid native histogram refused as bad data",
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: series("hist"), Histograms: []prompb.Histogram{badHist}},
				}})
			},
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"1 samples rejected: 1 undecodable"},
			want:         map[string]int{"hist": 0},
			wantRejected: map[string]float64{limits.ReasonUndecodable: 1},
		},
		{
			name: "remote_write 2.0 refused",
			body: func(t *testing.T) []byte { return encode(t, &prompb.WriteRequest{}) },
			mutate: func(r *http.Request) {
				r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
			},
			wantCode:   http.StatusUnsupportedMediaType,
			wantInBody: []string{"io.prometheus.write.v2.Request", "remote_write 1.0"},
		},
		{
			name:       "json refused",
			body:       func(t *testing.T) []byte { return []byte(`{}`) },
			mutate:     func(r *http.Request) { r.Header.Set("Content-Type", "application/json") },
			wantCode:   http.StatusUnsupportedMediaType,
			wantInBody: []string{"application/json"},
		},
		{
			name:       "gzip refused",
			body:       func(t *testing.T) []byte { return encode(t, &prompb.WriteRequest{}) },
			mutate:     func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") },
			wantCode:   http.StatusUnsupportedMediaType,
			wantInBody: []string{"gzip", "snappy"},
		},
		{
			name:         "not snappy",
			body:         func(t *testing.T) []byte { return []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} },
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"snappy"},
			wantRejected: map[string]float64{limits.ReasonUndecodable: 1},
		},
		{
			name:         "snappy but not protobuf",
			body:         func(t *testing.T) []byte { return snappy.Encode(nil, []byte("\xff\xff\xff not a protobuf")) },
			wantCode:     http.StatusBadRequest,
			wantInBody:   []string{"prometheus.WriteRequest"},
			wantRejected: map[string]float64{limits.ReasonUndecodable: 1},
		},
		{
			name: "absent headers mean remote_write 1.0 with snappy",
			body: func(t *testing.T) []byte {
				return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("bare"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}}})
			},
			mutate:     func(r *http.Request) { r.Header.Del("Content-Type"); r.Header.Del("Content-Encoding") },
			wantCode:   http.StatusNoContent,
			want:       map[string]int{"bare": 1},
			wantStored: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
			reg := prometheus.NewRegistry()
			im := selfobs.NewIngestMetrics(reg)
			h := NewHandler(Options{
				Appendable: db,
				Limits:     limits.Limits{MaxLabelValueLength: 100},
				Ingest:     im,
				Registerer: reg,
			})
			if tc.prior != nil {
				if w := post(h, encode(t, tc.prior), nil); w.Code != http.StatusNoContent {
					t.Fatalf("prior write: %d %s", w.Code, w.Body)
				}
			}
			w := post(h, tc.body(t), tc.mutate)
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.wantCode)
			}
			for _, s := range tc.wantInBody {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("body %q does not contain %q", w.Body.String(), s)
				}
			}
			for name, n := range tc.want {
				got := 0
				for _, pts := range readSeries(t, db, name) {
					got += len(pts)
				}
				if got != n {
					t.Errorf("series %s has %d samples, want %d", name, got, n)
				}
			}
			if got := testutil.ToFloat64(im.Stored.WithLabelValues("metrics")); got != tc.wantStored {
				t.Errorf("vigil_stored_total = %v, want %v", got, tc.wantStored)
			}
			for reason, n := range tc.wantRejected {
				if got := testutil.ToFloat64(im.Rejected.WithLabelValues("metrics", reason)); got != n {
					t.Errorf("vigil_rejected_total{reason=%q} = %v, want %v", reason, got, n)
				}
			}
		})
	}
}

func TestHandlerStoresValuesAndExemplars(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	h := NewHandler(Options{Appendable: db})
	now := time.Now().UnixMilli()
	hp := nativeHistogram()
	hp.Timestamp = now
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{
			Labels:    series("reqs_total", "job", "api"),
			Samples:   []prompb.Sample{{Timestamp: now, Value: 42}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6"}}, Value: 42, Timestamp: now}},
		},
		{Labels: series("lat_seconds", "job", "api"), Histograms: []prompb.Histogram{hp}},
	}})
	if w := post(h, body, nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	got := readSeries(t, db, "reqs_total")
	if pts := got[`{__name__="reqs_total", job="api"}`]; len(pts) != 1 || pts[0].v != 42 || pts[0].t != now {
		t.Fatalf("reqs_total = %+v, want one sample 42 at %d", got, now)
	}
	hs := readSeries(t, db, "lat_seconds")[`{__name__="lat_seconds", job="api"}`]
	if len(hs) != 1 || hs[0].h == nil || hs[0].h.Count != 5 || hs[0].h.Sum != 12.5 || hs[0].h.Schema != 1 {
		t.Fatalf("lat_seconds = %+v, want one native histogram count 5 sum 12.5 schema 1", hs)
	}

	eq, err := db.ExemplarQuerier(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(now-1, now+1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "reqs_total")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Exemplars) != 1 || res[0].Exemplars[0].Labels.Get("trace_id") != "4bf92f3577b34da6" {
		t.Fatalf("exemplars = %+v, want one with trace_id 4bf92f3577b34da6", res)
	}
}

func TestHandlerMethod(t *testing.T) {
	h := NewHandler(Options{Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})})
	r := httptest.NewRequest(http.MethodGet, Path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("GET: status %d Allow %q, want 405 Allow POST", w.Code, w.Header().Get("Allow"))
	}
}

// TestHandlerSnappyBomb checks that bodies which would inflate beyond
// MaxRequestBytes are refused from snappy's length header alone.
func TestHandlerSnappyBomb(t *testing.T) {
	const maxBytes = 1 << 20
	// A real one: 8 MiB of zeros compresses to about 380 KiB.
	inflated := snappy.Encode(nil, make([]byte, 8<<20))
	// A forged one: a header claiming 4 GiB, followed by a few bytes. Decode
	// would allocate the claimed size before noticing the lie.
	forged := append(binary.AppendUvarint(nil, 0xfffffff0), 0x00, 0x01, 0x02)
	// Just inside the limit still works.
	okRaw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: series("padded", "pad", strings.Repeat("p", 1000)), Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		body     []byte
		wantCode int
	}{
		{name: "real 8 MiB inflation", body: inflated, wantCode: http.StatusRequestEntityTooLarge},
		{name: "forged 4 GiB header", body: forged, wantCode: http.StatusRequestEntityTooLarge},
		{name: "header beyond 32 bits is corrupt", body: append(binary.AppendUvarint(nil, 1<<40), 0), wantCode: http.StatusBadRequest},
		{name: "compressed body itself too large", body: bytes.Repeat([]byte{0xab}, 2*maxBytes), wantCode: http.StatusRequestEntityTooLarge},
		{name: "within the limit", body: snappy.Encode(nil, okRaw), wantCode: http.StatusNoContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			im := selfobs.NewIngestMetrics(reg)
			h := NewHandler(Options{Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true}), Limits: limits.Limits{MaxRequestBytes: maxBytes}, Ingest: im})
			w := post(h, tc.body, nil)
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.wantCode)
			}
			if tc.wantCode == http.StatusRequestEntityTooLarge {
				if got := testutil.ToFloat64(im.Rejected.WithLabelValues("metrics", limits.ReasonRequestTooLarge)); got != 1 {
					t.Errorf("vigil_rejected_total{reason=request_too_large} = %v, want 1", got)
				}
			}
		})
	}
}

// gatedAppendable blocks AppenderV2 until released, to hold requests in flight.
type gatedAppendable struct {
	storage.AppendableV2
	entered chan struct{}
	release chan struct{}
}

func (g *gatedAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	g.entered <- struct{}{}
	<-g.release
	return g.AppendableV2.AppenderV2(ctx)
}

func TestHandlerOverload(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	gate := &gatedAppendable{AppendableV2: db, entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	im := selfobs.NewIngestMetrics(reg)
	h := NewHandler(Options{Appendable: gate, MaxInFlight: 1, Ingest: im, Registerer: reg})
	now := time.Now().UnixMilli()
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("load"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}}})

	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	wg.Go(func() { first = post(h, body, nil) })
	<-gate.entered // the first request now holds the only slot

	w := post(h, body, nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second request: status %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	close(gate.release)
	wg.Wait()
	if first.Code != http.StatusNoContent {
		t.Fatalf("first request: status %d (%s), want 204", first.Code, first.Body)
	}
	// The slot is free again.
	go func() { <-gate.entered }()
	if w := post(h, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("load"), Samples: []prompb.Sample{{Timestamp: now + 1, Value: 1}}}}}), nil); w.Code != http.StatusNoContent {
		t.Fatalf("third request: status %d (%s), want 204", w.Code, w.Body)
	}
	if got := testutil.ToFloat64(im.Rejected.WithLabelValues("metrics", limits.ReasonOverloaded)); got != 1 {
		t.Errorf("vigil_rejected_total{reason=overloaded} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_remote_write_requests_total"); err != nil || n != 2 {
		t.Errorf("vigil_remote_write_requests_total has %d series (err %v), want 2 (204 and 503)", n, err)
	}
}

// failingAppendable returns appenders whose Append or Commit fails like a
// broken disk would.
type failingAppendable struct {
	storage.AppendableV2
	failAppend, failCommit bool
}

var errDisk = errors.New("write /data/wal/00000001: no space left on device")

func (f failingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &failingAppender{AppenderV2: f.AppendableV2.AppenderV2(ctx), f: f}
}

type failingAppender struct {
	storage.AppenderV2
	f failingAppendable
}

func (a *failingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.f.failAppend && ls.Get("__name__") == "second" {
		return 0, errDisk
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *failingAppender) Commit() error {
	if a.f.failCommit {
		_ = a.AppenderV2.Rollback()
		return errDisk
	}
	return a.AppenderV2.Commit()
}

func TestHandlerStorageFailure(t *testing.T) {
	for _, tc := range []failingAppendable{{failAppend: true}, {failCommit: true}} {
		t.Run(map[bool]string{true: "append", false: "commit"}[tc.failAppend], func(t *testing.T) {
			db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
			tc.AppendableV2 = db
			reg := prometheus.NewRegistry()
			im := selfobs.NewIngestMetrics(reg)
			h := NewHandler(Options{Appendable: tc, Ingest: im})
			now := time.Now().UnixMilli()
			w := post(h, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: series("first"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
				{Labels: series("second"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
			}}), nil)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
			}
			if got := readSeries(t, db, "first"); len(got) != 0 {
				t.Errorf("first series stored after a storage failure (%v); the request must be all-or-nothing", got)
			}
			if got := testutil.ToFloat64(im.Stored.WithLabelValues("metrics")); got != 0 {
				t.Errorf("vigil_stored_total = %v, want 0", got)
			}
		})
	}
}

// The metadata of a request, with or without samples, is kept for
// /api/v1/metadata.
func TestHandlerMetadata(t *testing.T) {
	meta := metricmeta.New(metricmeta.Options{})
	h := NewHandler(Options{Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true}), Metadata: meta})
	reqs := []*prompb.WriteRequest{
		{Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."},
			{Type: prompb.MetricMetadata_GAUGEHISTOGRAM, MetricFamilyName: "queue_wait", Unit: "seconds"},
			{Type: prompb.MetricMetadata_MetricType(99), MetricFamilyName: "odd", Help: "Unknown type."},
		}},
		{
			Timeseries: []prompb.TimeSeries{{Labels: series("up"), Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}},
			Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Target up."}},
		},
	}
	for _, req := range reqs {
		if rec := post(h, encode(t, req), nil); rec.Code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", rec.Code, rec.Body)
		}
	}
	want := map[string][]metadata.Metadata{
		"http_requests_total": {{Type: model.MetricTypeCounter, Help: "Requests."}},
		"queue_wait":          {{Type: model.MetricTypeGaugeHistogram, Unit: "seconds"}},
		"odd":                 {{Type: model.MetricTypeUnknown, Help: "Unknown type."}},
		"up":                  {{Type: model.MetricTypeGauge, Help: "Target up."}},
	}
	if got := meta.All(); !reflect.DeepEqual(got, want) {
		t.Errorf("metadata = %v, want %v", got, want)
	}
}
