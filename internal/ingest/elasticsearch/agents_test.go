package elasticsearch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

// Requests as agents that cannot run here send them, written from their
// documentation and source: testdata/agents/<agent>/NN-*.http, each the
// request line, headers and body (sent gzip-compressed when the headers
// say Content-Encoding: gzip, as these agents compress). Each agent's
// requests are replayed in order, at the paths an agent configured with
// vigil's bare host and port calls; the answers' statuses and the records
// stored are pinned in testdata/agents/<agent>.golden.json, and the
// records' hosts and services are checked here.
func TestAgentRequests(t *testing.T) {
	type source struct{ host, service string }
	for _, tc := range []struct {
		agent string
		want  []source // the records' host.name and service.name, in order
	}{
		// Filebeat 8.15, filestream input, output.elasticsearch: the
		// version, license, ILM and template calls, then a bulk of an
		// access log line and an ECS JSON line.
		{"filebeat", []source{{"web-04", ""}, {"web-04", "orders"}}},
		// Fluent Bit's es output: tail of container logs with the
		// kubernetes filter (Suppress_Type_Name On, as for Elasticsearch
		// 8), and its default that still sends _type.
		{"fluentbit", []source{{"node-a", "checkout"}, {"node-b", "cart"}, {"", ""}}},
		// Vector's elasticsearch sink (api_version auto, compression
		// gzip): the version probe, the health check, a bulk from a file
		// source.
		{"vector", []source{{"web-05", ""}, {"web-05", ""}}},
	} {
		t.Run(tc.agent, func(t *testing.T) {
			s := &sink{}
			srv, _ := newTestServer(t, s, Options{})
			files, err := filepath.Glob(filepath.Join("testdata", "agents", tc.agent, "*.http"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no requests: %v", err)
			}
			type answer struct {
				Request string         `json:"request"`
				Status  int            `json:"status"`
				Body    map[string]any `json:"body,omitempty"`
			}
			var answers []answer
			for _, f := range files {
				req := readRequest(t, f, srv.URL)
				if !RootRequest(req.Method, req.URL.Path, req.Header) {
					t.Errorf("%s: %s %s is not routed to the API at a listener's root", f, req.Method, req.URL.Path)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Header.Get(ProductHeader) != "Elasticsearch" {
					t.Errorf("%s: no %s header: clients refuse the answer", f, ProductHeader)
				}
				a := answer{Request: req.Method + " " + req.URL.RequestURI(), Status: resp.StatusCode}
				if len(body) > 0 {
					if err := json.Unmarshal(body, &a.Body); err != nil {
						t.Fatalf("%s: answer is not JSON: %v\n%s", f, err, body)
					}
					if a.Body["errors"] == true {
						t.Errorf("%s: bulk items refused: %s", f, body)
					}
					redact(a.Body)
				}
				answers = append(answers, a)
			}

			if len(s.recs) != len(tc.want) {
				t.Fatalf("%d records stored, want %d", len(s.recs), len(tc.want))
			}
			type record struct {
				Resource       map[string]any `json:"resource"`
				Timestamp      string         `json:"timestamp"`
				SeverityText   string         `json:"severity_text,omitempty"`
				SeverityNumber int32          `json:"severity_number,omitempty"`
				Body           string         `json:"body"`
				TraceID        string         `json:"trace_id,omitempty"`
				SpanID         string         `json:"span_id,omitempty"`
				Attributes     map[string]any `json:"attributes"`
			}
			var records []record
			for i, lr := range s.recs {
				res := s.res[i]
				if got := (source{str(res["host.name"]), str(res["service.name"])}); got != tc.want[i] {
					t.Errorf("record %d (%q): host and service %+v, want %+v", i, lr.Body().Str(), got, tc.want[i])
				}
				r := record{
					Resource: res, Timestamp: lr.Timestamp().AsTime().Format("2006-01-02T15:04:05.999999999Z07:00"),
					SeverityText: lr.SeverityText(), SeverityNumber: int32(lr.SeverityNumber()), Body: lr.Body().Str(),
					Attributes: lr.Attributes().AsRaw(),
				}
				if !lr.TraceID().IsEmpty() {
					r.TraceID = lr.TraceID().String()
				}
				if !lr.SpanID().IsEmpty() {
					r.SpanID = lr.SpanID().String()
				}
				records = append(records, r)
			}
			out, err := json.MarshalIndent(map[string]any{"answers": answers, "records": records}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			goldentest.CompareJSON(t, filepath.Join("agents", tc.agent+".golden.json"), out)
		})
	}
}

func str(v any) string { s, _ := v.(string); return s }

// redact replaces what differs from run to run in an answer (ids, the
// time taken) with its kind.
func redact(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch k {
			case "_id", "cluster_uuid", "uid", "took", "_seq_no":
				x[k] = "<" + k + ">"
			default:
				redact(e)
			}
		}
	case []any:
		for _, e := range x {
			redact(e)
		}
	}
}

// readRequest reads a request file: a request line, headers, an empty
// line, then the body as the agent sends it before compression.
func readRequest(t *testing.T, file, base string) *http.Request {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := bytes.Cut(raw, []byte("\n\n"))
	lines := bufio.NewScanner(bytes.NewReader(head))
	lines.Scan()
	method, rest, _ := strings.Cut(lines.Text(), " ")
	target, _, _ := strings.Cut(rest, " ")
	header := http.Header{}
	for lines.Scan() {
		k, v, ok := strings.Cut(lines.Text(), ":")
		if !ok {
			t.Fatalf("%s: bad header line %q", file, lines.Text())
		}
		header.Add(k, strings.TrimSpace(v))
	}
	if header.Get("Content-Encoding") == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		body = buf.Bytes()
	}
	req, err := http.NewRequest(method, base+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	header.Del("Host")
	req.Header = header
	// A client that asks for gzip must decompress the answer itself.
	req.Header.Del("Accept-Encoding")
	return req
}
