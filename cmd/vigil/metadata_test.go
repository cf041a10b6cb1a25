package main

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/vigil-observability/vigil/internal/loadgen"
	"github.com/vigil-observability/vigil/internal/spanmetrics"
)

type metaEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata fetches /api/v1/metadata with the query and returns its data
// and the HTTP status.
func (s *server) metadata(t *testing.T, query string) (map[string][]metaEntry, int) {
	t.Helper()
	var r struct {
		Status string                 `json:"status"`
		Data   map[string][]metaEntry `json:"data"`
	}
	code := s.getJSON(t, "/api/v1/metadata?"+query, &r)
	if code == http.StatusOK && r.Status != "success" {
		t.Fatalf("metadata?%s: status %q", query, r.Status)
	}
	return r.Data, code
}

// TestMetricMetadata: /api/v1/metadata lists what remote_write senders
// declared, what OTLP metrics describe and vigil's own derived series,
// with Prometheus's parameters.
func TestMetricMetadata(t *testing.T) {
	s := startServer(t, t.TempDir())
	client := &http.Client{Timeout: 10 * time.Second}

	// Prometheus sends metadata in requests of their own, without samples.
	req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "rw_requests_total", Help: "Requests handled."},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rw_latency_seconds", Help: "Latency.", Unit: "seconds"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "rw_temperature", Help: "Temperature."},
	}}
	if err := loadgen.PostRemoteWrite(t.Context(), client, s.httpURL+"/api/v1/write", req); err != nil {
		t.Fatal(err)
	}

	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue.depth")
	m.SetDescription("Items waiting in the queue.")
	m.SetUnit("{item}")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.SetIntValue(3)
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(s.otlpHTTPURL+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP metrics: HTTP %d", resp.StatusCode)
	}

	all, code := s.metadata(t, "")
	if code != http.StatusOK {
		t.Fatalf("metadata: HTTP %d", code)
	}
	want := map[string][]metaEntry{
		"rw_requests_total":  {{"counter", "Requests handled.", ""}},
		"rw_latency_seconds": {{"histogram", "Latency.", "seconds"}},
		"rw_temperature":     {{"gauge", "Temperature.", ""}},
		// OTLP names as Prometheus's translator writes them; "{item}" is
		// an annotation, not a unit.
		"queue_depth": {{"gauge", "Items waiting in the queue.", ""}},
	}
	for name, md := range spanmetrics.Metadata() {
		want[name] = []metaEntry{{string(md.Type), md.Help, md.Unit}}
	}
	for name, w := range want {
		if got := all[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("metadata[%s] = %+v, want %+v", name, got, w)
		}
	}

	one, _ := s.metadata(t, "metric=rw_temperature")
	if !reflect.DeepEqual(one, map[string][]metaEntry{"rw_temperature": want["rw_temperature"]}) {
		t.Errorf("metadata?metric=rw_temperature = %+v", one)
	}
	if none, _ := s.metadata(t, "metric=no_such_metric"); len(none) != 0 {
		t.Errorf("metadata?metric=no_such_metric = %+v, want empty", none)
	}
	if two, _ := s.metadata(t, "limit=2"); len(two) != 2 {
		t.Errorf("metadata?limit=2 has %d families, want 2", len(two))
	}
	for _, q := range []string{"limit=x", "limit_per_metric=" + url.QueryEscape("1.5")} {
		if _, code := s.metadata(t, q); code != http.StatusBadRequest {
			t.Errorf("metadata?%s: HTTP %d, want 400", q, code)
		}
	}
}
