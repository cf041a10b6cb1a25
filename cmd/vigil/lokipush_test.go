package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// lokiRecord is a record as the logs API returns it.
type lokiRecord struct {
	Service    string         `json:"service"`
	Body       string         `json:"body"`
	TraceID    string         `json:"trace_id"`
	Severity   string         `json:"severity"`
	Resource   map[string]any `json:"resource"`
	Attributes map[string]any `json:"attributes"`
}

func (s *server) logsOfTrace(t *testing.T, traceID string) []lokiRecord {
	t.Helper()
	var lr struct{ Data []lokiRecord }
	if code := s.getJSON(t, "/api/logs?limit=1000&trace_id="+traceID, &lr); code != http.StatusOK {
		t.Fatalf("logs of trace %s: HTTP %d", traceID, code)
	}
	return lr.Data
}

// lokiProtoPush encodes a logproto.PushRequest by hand, as an agent's
// generated code puts it on the wire, and snappy-compresses it.
func lokiProtoPush(labels string, lines []string, metadata map[string]string, at time.Time) []byte {
	var stream []byte
	stream = protowire.AppendTag(stream, 1, protowire.BytesType)
	stream = protowire.AppendString(stream, labels)
	for _, line := range lines {
		var ts []byte
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(at.Unix()))
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(at.Nanosecond()))
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendBytes(e, ts)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, line)
		for k, v := range metadata {
			var p []byte
			p = protowire.AppendTag(p, 1, protowire.BytesType)
			p = protowire.AppendString(p, k)
			p = protowire.AppendTag(p, 2, protowire.BytesType)
			p = protowire.AppendString(p, v)
			e = protowire.AppendTag(e, 3, protowire.BytesType)
			e = protowire.AppendBytes(e, p)
		}
		stream = protowire.AppendTag(stream, 2, protowire.BytesType)
		stream = protowire.AppendBytes(stream, e)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, stream)
	return snappy.Encode(nil, req)
}

func lokiPost(t *testing.T, url, contentType, encoding string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/loki/api/v1/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Pushes in both of Loki's encodings reach the logs API with their labels
// as resource attributes, the tenant kept, and the trace id lifted from
// structured metadata (protobuf) and from the JSON line; a push of which
// part is refused answers 400, keeps the rest and counts the refusal.
func TestLokiPushIntoVigil(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	for path, want := range map[string]string{"/ready": "ready\n", "/": "<"} {
		// As a browser asks: without text/html, / is Elasticsearch's.
		req, err := http.NewRequest(http.MethodGet, s.httpURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), want) {
			t.Errorf("GET %s: %d %.80q, want 200 %q", path, resp.StatusCode, b, want)
		}
	}
	var bi map[string]string
	if code := s.getJSON(t, "/loki/api/v1/status/buildinfo", &bi); code != http.StatusOK || bi["version"] == "" || bi["goVersion"] == "" {
		t.Errorf("buildinfo: %d %v", code, bi)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	now := time.Now()
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("order %d paid", i))
	}
	body := lokiProtoPush(`{service_name="checkout", env="prod"}`, lines, map[string]string{"trace_id": traceID}, now)
	if code, msg := lokiPost(t, s.httpURL, "application/x-protobuf", "", body, "X-Scope-OrgID", "team-a"); code != http.StatusNoContent {
		t.Fatalf("protobuf push: %d %s", code, msg)
	}

	var js strings.Builder
	js.WriteString(`{"streams":[{"stream":{"app":"cart","level":"error"},"values":[`)
	for i := range 30 {
		if i > 0 {
			js.WriteByte(',')
		}
		fmt.Fprintf(&js, `["%d",%q]`, now.UnixNano()+int64(i), fmt.Sprintf(`{"msg":"cart %d lost","trace_id":%q}`, i, traceID))
	}
	js.WriteString(`]}]}`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(js.String()))
	_ = zw.Close()
	if code, msg := lokiPost(t, s.httpURL, "application/json", "gzip", gz.Bytes()); code != http.StatusNoContent {
		t.Fatalf("JSON push: %d %s", code, msg)
	}

	// One stream of two is refused for its labels; the other is kept.
	partial := fmt.Sprintf(`{"streams":[{"stream":{},"values":[["%d","lost"]]},{"stream":{"app":"cart"},"values":[["%d","kept trace_id=%s"]]}]}`,
		now.UnixNano(), now.UnixNano(), traceID)
	if code, msg := lokiPost(t, s.httpURL, "application/json", "", []byte(partial)); code != http.StatusBadRequest || !strings.Contains(msg, "bad_labels") {
		t.Errorf("partial push: %d %q, want 400 naming bad_labels", code, msg)
	}

	got := s.logsOfTrace(t, traceID)
	if len(got) != 71 {
		t.Fatalf("%d records of trace %s, want 71", len(got), traceID)
	}
	count := map[string]int{}
	for _, r := range got {
		count[r.Service]++
		switch r.Service {
		case "checkout":
			if r.Resource["env"] != "prod" || r.Resource["loki.tenant"] != "team-a" || !strings.HasPrefix(r.Body, "order ") {
				t.Fatalf("checkout record %+v", r)
			}
			if _, ok := r.Attributes["trace_id"]; ok {
				t.Errorf("trace_id kept as an attribute beside the record's trace id: %v", r.Attributes)
			}
		case "cart":
			if r.Resource["app"] != "cart" || r.Resource["loki.tenant"] != nil {
				t.Fatalf("cart record %+v", r)
			}
		}
	}
	if count["checkout"] != 40 || count["cart"] != 31 {
		t.Errorf("records per service %v, want checkout 40, cart 31", count)
	}
	// The same lines read back through the Loki query API, under the
	// labels they were pushed with.
	pushed := s.lokiLines(t, `{service_name="checkout", env="prod"}`)
	if len(pushed) != 40 {
		t.Errorf("Loki query of checkout: %d lines, want 40", len(pushed))
	}
	if labels := pushed["order 7 paid"]; labels["loki_tenant"] != "team-a" || labels["trace_id"] != traceID {
		t.Errorf("Loki query of checkout: \"order 7 paid\" has labels %v, want loki_tenant team-a and its trace_id", labels)
	}
	if m := s.metricValue(t, `vigil_rejected_total{reason="invalid_label",signal="logs"}`); m != 1 {
		t.Errorf("invalid_label rejections %v, want 1", m)
	}
}

// lokiClientsDir holds the Node project of TestLokiNodeClients.
const lokiClientsDir = "testdata/lokiclients"

// npmCI installs the Node clients once per package-lock.json: the stamp
// beside node_modules records the lock's hash (both are git-ignored), so a
// fresh clone installs and later runs reuse the install.
func npmCI(t *testing.T) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(lokiClientsDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(lokiClientsDir, ".installed")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = lokiClientsDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The Node Loki clients, pinned by testdata/lokiclients/package-lock.json,
// ship into vigil unchanged: winston-loki in its default snappy protobuf
// and in JSON, pino-loki in JSON, all with an X-Scope-OrgID. Every line is
// read back through the logs API with its labels as resource attributes
// and its trace id, which winston's JSON lines carry in the line and
// pino's in structured metadata.
func TestLokiNodeClients(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the Node Loki clients cannot run (.ci/run installs Node)", tool)
		}
	}
	npmCI(t)
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	const lines = 25
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	run := fmt.Sprint(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "ship.js")
	cmd.Dir = lokiClientsDir
	cmd.Env = append(os.Environ(), "VIGIL_URL="+s.httpURL, "RUN_ID="+run, fmt.Sprint("LINES=", lines), "TRACE_ID="+traceID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node ship.js: %v\n%s", err, out)
	}
	var sent struct{ Sent int }
	if err := json.Unmarshal(bytes.TrimSpace(out), &sent); err != nil || sent.Sent != 3*lines {
		t.Fatalf("ship.js printed %q (%v), want {\"sent\":%d}", out, err, 3*lines)
	}

	got := s.logsOfTrace(t, traceID)
	seen := map[string]map[string]bool{}
	for _, r := range got {
		if r.Resource["run"] != run || r.Resource["loki.tenant"] != "team-node" {
			t.Fatalf("record without its labels or tenant: %+v", r)
		}
		if seen[r.Service] == nil {
			seen[r.Service] = map[string]bool{}
		}
		var line struct {
			Msg     string `json:"msg"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.Body), &line); err != nil {
			t.Fatalf("%s line %q is not the JSON the client sent: %v", r.Service, r.Body, err)
		}
		seen[r.Service][line.Msg+line.Message] = true
		switch r.Service {
		case "pino":
			if r.Resource["host.name"] != "node-host" || r.Severity != "warning" {
				t.Errorf("pino record %+v: want host.name node-host, severity warning", r)
			}
		case "winston-protobuf", "winston-json":
			if r.Severity != "info" {
				t.Errorf("%s record severity %q, want info", r.Service, r.Severity)
			}
		}
	}
	for _, svc := range []string{"winston-protobuf", "winston-json", "pino"} {
		for i := range lines {
			if msg := fmt.Sprintf("%s line %d", svc, i); !seen[svc][msg] {
				t.Errorf("%q not read back with trace %s (read %d records)", msg, traceID, len(got))
			}
		}
	}
	if len(got) != 3*lines {
		t.Errorf("%d records of the trace, want %d", len(got), 3*lines)
	}
}
