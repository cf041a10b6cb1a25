package promremote

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// Rejected samples name the remote_write client that sent them.
func TestRejectionSources(t *testing.T) {
	im := selfobs.NewIngestMetrics(nil)
	h := NewHandler(Options{Appendable: storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true}), Limits: limits.Limits{MaxLabelValueLength: 10}, Ingest: im})
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "path", Value: strings.Repeat("x", 20)}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: 1}},
	}}})
	if w := post(h, body, nil); w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
	got := im.Sources.Recent("metrics", limits.ReasonLabelValueTooLong)
	if len(got) != 1 || got[0].Source != "remote_write client 192.0.2.1" {
		t.Errorf("sources = %+v, want remote_write client 192.0.2.1", got)
	}
}
