package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// sink is a LogsConsumer keeping what it was given, or failing with err.
type sink struct {
	mu   sync.Mutex
	recs []plog.LogRecord
	res  []map[string]any
	err  error
}

func (s *sink) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				s.recs = append(s.recs, lr)
				s.res = append(s.res, rl.Resource().Attributes().AsRaw())
			}
		}
	}
	return nil
}

func (s *sink) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.recs {
		out = append(out, r.Body().Str())
	}
	return out
}

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, s *sink, opts Options) (*httptest.Server, *selfobs.IngestMetrics) {
	t.Helper()
	m := selfobs.NewIngestMetrics(prometheus.NewRegistry())
	opts.Logs, opts.Ingest, opts.Now = s, m, func() time.Time { return now }
	srv := httptest.NewServer(NewHandler(opts))
	t.Cleanup(srv.Close)
	return srv, m
}

// The official Go client's BulkIndexer ships into vigil unchanged: its
// product check passes on vigil's answers, every document is acknowledged
// and stored, with its trace id.
func TestGoClientBulkIndexer(t *testing.T) {
	s := &sink{}
	srv, _ := newTestServer(t, s, Options{})
	client, err := es.NewClient(es.Config{Addresses: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Info()
	if err != nil {
		t.Fatalf("Info: %v (the client's product check)", err)
	}
	info.Body.Close()
	if info.StatusCode != 200 {
		t.Fatalf("Info: %s", info.Status())
	}

	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: "app-logs", FlushBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	const n = 250
	var ok, failed atomic.Int64
	for i := range n {
		doc := fmt.Sprintf(`{"@timestamp":%q,"message":"line %d","log.level":"info","service.name":"shop","trace.id":"4bf92f3577b34da6a3ce929d0e0e%04x"}`,
			now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339Nano), i, i)
		err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action: "index", Body: strings.NewReader(doc),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) { ok.Add(1) },
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
				failed.Add(1)
				t.Logf("item failed: %v %+v", err, r.Error)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := bi.Stats()
	if ok.Load() != n || failed.Load() != 0 || st.NumFailed != 0 || st.NumFlushed != n {
		t.Fatalf("%d acknowledged, %d failed (stats %+v), want all %d acknowledged", ok.Load(), failed.Load(), st, n)
	}
	if got := len(s.bodies()); got != n {
		t.Fatalf("%d records stored, want %d", got, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.recs {
		if r.TraceID().IsEmpty() || s.res[i]["service.name"] != "shop" {
			t.Fatalf("record %d: trace id %s, resource %v: want the document's trace id and service", i, r.TraceID(), s.res[i])
		}
	}
}

func bulkRequest(t *testing.T, url, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("answer is not JSON: %v\n%s", err, b)
		}
	}
	return resp, out
}

// A bulk with good and bad items: each bad item gets its own error in
// its slot, the good ones are stored, every refusal is counted.
func TestBulkPartialAcceptance(t *testing.T) {
	s := &sink{}
	srv, m := newTestServer(t, s, Options{})
	body := strings.Join([]string{
		`{"index":{"_index":"a"}}`, `{"@timestamp":"2026-12-06T11:59:00Z","message":"good one"}`,
		`{"create":{"_index":"a","_id":"c1"}}`, `not json`,
		`{"delete":{"_index":"a","_id":"d1"}}`,
		`{"index":{"_index":"a"}}`, `{"@timestamp":"1999-01-01T00:00:00Z","message":"too old"}`,
		`{"index":{"_index":"a"}}`, `{"@timestamp":"2027-06-01T00:00:00Z","message":"from the future"}`,
		`{"create":{}}`, `{"message":"good two"}`,
	}, "\n") + "\n"
	resp, out := bulkRequest(t, srv.URL+"/logs-default/_bulk", body)
	if resp.StatusCode != 200 || resp.Header.Get(ProductHeader) != "Elasticsearch" {
		t.Fatalf("status %d, product header %q", resp.StatusCode, resp.Header.Get(ProductHeader))
	}
	if out["errors"] != true {
		t.Errorf("errors = %v, want true", out["errors"])
	}
	items := out["items"].([]any)
	type slot struct {
		op     string
		status int
		typ    string
	}
	want := []slot{{"index", 201, ""}, {"create", 400, "mapper_parsing_exception"}, {"delete", 400, "action_request_validation_exception"},
		{"index", 400, "mapper_parsing_exception"}, {"index", 400, "mapper_parsing_exception"}, {"create", 201, ""}}
	if len(items) != len(want) {
		t.Fatalf("%d items in the answer, want %d: %v", len(items), len(want), items)
	}
	for i, w := range want {
		res, ok := items[i].(map[string]any)[w.op].(map[string]any)
		if !ok {
			t.Fatalf("item %d: %v, want a %q result", i, items[i], w.op)
		}
		typ := ""
		if e, ok := res["error"].(map[string]any); ok {
			typ, _ = e["type"].(string)
		}
		if int(res["status"].(float64)) != w.status || typ != w.typ {
			t.Errorf("item %d: status %v error %q, want %d %q", i, res["status"], typ, w.status, w.typ)
		}
		if w.status == 201 && (res["_id"] == "" || res["result"] != "created") {
			t.Errorf("item %d: %v, want an id and result created", i, res)
		}
	}
	if got := s.bodies(); strings.Join(got, "|") != "good one|good two" {
		t.Errorf("stored %q, want the two good documents", got)
	}
	s.mu.Lock()
	if idx, _ := s.recs[1].Attributes().Get(IndexAttribute); idx.Str() != "logs-default" {
		t.Errorf("index of an item without one: %q, want the path's", idx.Str())
	}
	s.mu.Unlock()
	for reason, n := range map[string]float64{limits.ReasonUndecodable: 1, limits.ReasonUnsupported: 1, limits.ReasonTimestampTooOld: 1, limits.ReasonTimestampInFuture: 1} {
		if got := testutil.ToFloat64(m.Rejected.WithLabelValues("logs", reason)); got != n {
			t.Errorf("vigil_rejected_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if got := testutil.ToFloat64(m.Received.WithLabelValues("logs")); got != 6 {
		t.Errorf("received %v items, want 6", got)
	}
}

// Refusals of the whole request: what the client should retry (429, 503
// with Retry-After) and what it should not (400, 413).
func TestBulkWholeRequestRefusals(t *testing.T) {
	good := "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"x\"}\n"
	for _, tc := range []struct {
		name       string
		consumer   error
		opts       Options
		body       string
		status     int
		retryAfter bool
		typ        string
	}{
		{name: "storage busy", consumer: fmt.Errorf("queue full: %w", ingest.ErrOverloaded), body: good, status: 429, retryAfter: true, typ: "es_rejected_execution_exception"},
		{name: "storage failing", consumer: fmt.Errorf("disk gone"), body: good, status: 503, retryAfter: true, typ: "unavailable_shards_exception"},
		{name: "malformed action line", body: "{\"index\":{}}\n{}\n[\n", status: 400, typ: "illegal_argument_exception"},
		{name: "body over max_request_bytes", opts: Options{Limits: limits.Limits{MaxRequestBytes: 64}}, body: good + good + good, status: 413, typ: "content_too_long_exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{err: tc.consumer}
			srv, _ := newTestServer(t, s, tc.opts)
			resp, out := bulkRequest(t, srv.URL+"/_bulk", tc.body)
			if resp.StatusCode != tc.status || (resp.Header.Get("Retry-After") != "") != tc.retryAfter {
				t.Fatalf("status %d Retry-After %q, want %d (Retry-After: %v)", resp.StatusCode, resp.Header.Get("Retry-After"), tc.status, tc.retryAfter)
			}
			e, _ := out["error"].(map[string]any)
			if e["type"] != tc.typ || int(out["status"].(float64)) != tc.status {
				t.Errorf("answer %v, want error type %s", out, tc.typ)
			}
		})
	}
}

// The calls agents make around shipping, and what vigil does not do.
func TestAgentSetupCalls(t *testing.T) {
	srv, _ := newTestServer(t, &sink{}, Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", 200, `"number":"` + Version + `"`},
		{"HEAD", "/", 200, ""},
		{"GET", "/_license", 200, `"type":"basic"`},
		{"GET", "/_xpack", 200, `"features"`},
		{"GET", "/_cluster/health", 200, `"status":"green"`},
		{"HEAD", "/_index_template/filebeat-8.15.0", 404, ""},
		{"GET", "/_ilm/policy/filebeat", 404, "resource_not_found_exception"},
		{"PUT", "/_index_template/filebeat-8.15.0", 200, `"acknowledged":true`},
		{"PUT", "/_ilm/policy/filebeat", 200, `"acknowledged":true`},
		{"PUT", "/_data_stream/logs-app-default", 200, `"acknowledged":true`},
		{"PUT", "/_ingest/pipeline/parse", 200, `"acknowledged":true`},
		{"PUT", "/app-logs", 200, `"acknowledged":true`},
		{"HEAD", "/app-logs", 200, ""},
		{"GET", "/app-logs/_search", 400, "no handler found"},
		{"POST", "/_search", 400, "no handler found"},
		{"DELETE", "/app-logs", 400, "no handler found"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !bytes.Contains(b, []byte(tc.contains)) || resp.Header.Get(ProductHeader) != "Elasticsearch" {
			t.Errorf("%s %s: %d %s (product %q), want %d containing %s", tc.method, tc.path, resp.StatusCode, b, resp.Header.Get(ProductHeader), tc.status, tc.contains)
		}
	}
}

// The single-document endpoints answer with the item itself.
func TestSingleDocument(t *testing.T) {
	s := &sink{}
	srv, _ := newTestServer(t, s, Options{})
	client, err := es.NewClient(es.Config{Addresses: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Index("audit", strings.NewReader(`{"message":"door opened","@timestamp":"2026-12-06T11:00:00Z"}`), client.Index.WithDocumentID("d-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 201 || out["_id"] != "d-1" || out["result"] != "created" || out["_index"] != "audit" {
		t.Fatalf("%d %v, want 201 created with the id", res.StatusCode, out)
	}
	res2, err := client.Create("audit", "d-2", strings.NewReader(`{"@timestamp":"tomorrow"}`))
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != 400 {
		t.Errorf("a bad document: %d, want 400", res2.StatusCode)
	}
	if got := s.bodies(); len(got) != 1 || got[0] != "door opened" {
		t.Errorf("stored %q, want the one good document", got)
	}
}
