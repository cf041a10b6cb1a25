package promremote

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// lengthPrefixed encodes field 1 (wire type bytes) holding v.
func lengthPrefixed(v []byte) []byte {
	out := []byte{0x0a}
	n := len(v)
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	return append(append(out, byte(n)), v...)
}

// TestHandlerDecodeAmplification: bodies of empty entries, a few kilobytes
// once snappy-compressed, would decode to hundreds of megabytes; they are
// refused with 413 before unmarshalling. Real requests of the same wire
// size pass.
func TestHandlerDecodeAmplification(t *testing.T) {
	const maxBytes = 8 << 20
	real := &prompb.WriteRequest{}
	for i := range 20_000 {
		real.Timeseries = append(real.Timeseries, prompb.TimeSeries{
			Labels:  series("real_series", "instance", strings.Repeat("i", 20), "n", string(rune('a'+i%26))),
			Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: float64(i)}},
		})
	}
	tests := []struct {
		name     string
		raw      []byte
		wantCode int
		reason   string
	}{
		// A million empty TimeSeries: 2 MB inflated, 150 MB decoded.
		{"empty series", bytes.Repeat([]byte{0x0a, 0x00}, 1_000_000), http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge},
		// One series with a million empty labels.
		{"empty labels in one series", lengthPrefixed(bytes.Repeat([]byte{0x0a, 0x00}, 1_000_000)), http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge},
		// Nesting no WriteRequest has, where prompb would decode it:
		// under a native histogram (field 4 of a series).
		{"nested past any WriteRequest", lengthPrefixed(append([]byte{0x22}, lengthPrefixed(nested(100))[1:]...)), http.StatusBadRequest, limits.ReasonUndecodable},
		// Field 1 nested as deep, read by the schema as Prometheus
		// reads it, is one series with one label whose name is those
		// bytes and no sample: nothing to store, nothing amplified.
		// (Walked without the schema, as every body once was, it was
		// refused as nested.)
		{"nested field 1 is a label name", nested(100), http.StatusNoContent, ""},
		// Native histogram bucket deltas: packed varints, a byte each on
		// the wire and eight decoded.
		{"native histogram deltas", must((&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:     series("h"),
			Histograms: []prompb.Histogram{{PositiveDeltas: make([]int64, 7<<19), NegativeDeltas: make([]int64, 7<<19)}},
		}}}).Marshal()), http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge},
		{"real series", must(real.Marshal()), http.StatusNoContent, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im := selfobs.NewIngestMetrics(prometheus.NewRegistry())
			h := NewHandler(Options{
				Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true}), Ingest: im,
				Limits:       limits.Limits{MaxRequestBytes: maxBytes},
				DecodeBudget: decodecost.NewBudget(64 << 20),
			})
			w := post(h, snappy.Encode(nil, tc.raw), nil)
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.wantCode)
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(im.Rejected.WithLabelValues("metrics", tc.reason)); got != 1 {
					t.Errorf("vigil_rejected_total{reason=%s} = %v, want 1", tc.reason, got)
				}
			}
		})
	}
}

// TestHandlerDecodeBudgetBusy: a request that fits the budget, but not what
// other receivers left of it, is refused as retryable (503 Retry-After).
func TestHandlerDecodeBudgetBusy(t *testing.T) {
	budget := decodecost.NewBudget(8 << 20)
	h := NewHandler(Options{Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true}), DecodeBudget: budget})
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: series("budget"), Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
	}}})
	held, err := budget.Reserve(budget.Size())
	if err != nil {
		t.Fatal(err)
	}
	if w := post(h, body, nil); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("while the budget is taken: %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	held()
	if w := post(h, body, nil); w.Code != http.StatusNoContent {
		t.Errorf("once free: %d (%s), want 204", w.Code, w.Body.String())
	}
}

// nested is field 1 holding field 1 holding ... n deep.
func nested(n int) []byte {
	var b []byte
	for range n {
		b = lengthPrefixed(b)
	}
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
