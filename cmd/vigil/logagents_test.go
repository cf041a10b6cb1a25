package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// The official Elasticsearch Go client, pointed at vigil's
// /elasticsearch, ships logs into it unchanged (its product check passes
// on vigil's answers), and each line is readable back through the logs
// API and the Loki query API, linked to its trace.
func TestElasticsearchBulkIntoVigil(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	client, err := es.NewClient(es.Config{Addresses: []string{s.httpURL + "/elasticsearch"}})
	if err != nil {
		t.Fatal(err)
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: "shop-logs", FlushBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var failed []string
	for i := range n {
		doc := fmt.Sprintf(`{"@timestamp":%q,"message":"order %d shipped","log":{"level":"info"},"service":{"name":"shipping"},"trace":{"id":%q}}`,
			time.Now().Add(-time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, traceID)
		if err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action: "create", Body: strings.NewReader(doc),
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
				failed = append(failed, fmt.Sprint(err, r.Error))
			},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := bi.Stats(); st.NumFlushed != n || st.NumFailed != 0 || len(failed) > 0 {
		t.Fatalf("bulk stats %+v, failures %v: want all %d acknowledged", st, failed, n)
	}
	var lr struct {
		Data []struct {
			Service string `json:"service"`
			Body    string `json:"body"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/api/logs?limit=1000&trace_id="+traceID, &lr); code != http.StatusOK || len(lr.Data) != n {
		t.Fatalf("logs of trace %s: HTTP %d, %d records, want %d", traceID, code, len(lr.Data), n)
	}
	for _, r := range lr.Data {
		if r.Service != "shipping" || !strings.HasPrefix(r.Body, "order ") {
			t.Fatalf("a shipped line read back as %+v", r)
		}
	}
	// And through the Loki query API, as Grafana reads them.
	lines := s.lokiLines(t, `{service_name="shipping"} | trace_id="`+traceID+`"`)
	for i := range n {
		st, ok := lines[fmt.Sprintf("order %d shipped", i)]
		if !ok {
			t.Fatalf("order %d not in the Loki API's answer (%d lines)", i, len(lines))
		}
		if st["elasticsearch_index"] != "shop-logs" || st["detected_level"] != "info" {
			t.Fatalf("order %d's labels: %v", i, st)
		}
	}
}
