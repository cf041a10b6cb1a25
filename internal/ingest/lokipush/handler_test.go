package lokipush

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/gate"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

var handlerNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sink keeps what the handler stored.
type sink struct {
	mu   sync.Mutex
	logs []plog.Logs
	err  error
}

func (s *sink) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.logs = append(s.logs, ld)
	return nil
}

// records lists the stored records as "resource attrs | body".
func (s *sink) records() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ld := range s.logs {
		for _, rl := range ld.ResourceLogs().All() {
			attrs := fmt.Sprint(rl.Resource().Attributes().AsRaw())
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					out = append(out, attrs+" | "+lr.Body().Str())
				}
			}
		}
	}
	return out
}

type handlerEnv struct {
	h       http.Handler
	sink    *sink
	metrics *selfobs.IngestMetrics
}

func newHandlerEnv(t *testing.T, opts HandlerOptions) *handlerEnv {
	t.Helper()
	env := &handlerEnv{sink: &sink{}, metrics: selfobs.NewIngestMetrics(prometheus.NewRegistry())}
	if opts.Logs == nil {
		opts.Logs = env.sink
	}
	opts.Ingest = env.metrics
	if opts.Now == nil {
		opts.Now = func() time.Time { return handlerNow }
	}
	env.h = NewHandler(opts)
	return env
}

func (e *handlerEnv) push(t *testing.T, contentType string, body []byte, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, PushPath, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func (e *handlerEnv) rejected(reason string) float64 {
	return testutil.ToFloat64(e.metrics.Rejected.WithLabelValues(signal, reason))
}

func sec() int64 { return handlerNow.Add(-time.Minute).Unix() }

func TestHandlerPushProtobuf(t *testing.T) {
	env := newHandlerEnv(t, HandlerOptions{})
	body := snappyPush(pbStream{labels: `{service_name="checkout", env="prod"}`, entries: []pbEntry{
		{sec: sec(), line: "first"}, {sec: sec(), line: "second"},
	}})
	w := env.push(t, "application/x-protobuf", body, TenantHeader, "team-a")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("push: %d %q, want 204 and no body", w.Code, w.Body)
	}
	want := []string{
		"map[env:prod loki.tenant:team-a service.name:checkout] | first",
		"map[env:prod loki.tenant:team-a service.name:checkout] | second",
	}
	if got := env.sink.records(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q\nwant %q", got, want)
	}
	if got := testutil.ToFloat64(env.metrics.Received.WithLabelValues(signal)); got != 2 {
		t.Errorf("received %v lines, want 2", got)
	}
}

func TestHandlerPushJSONWithoutTenant(t *testing.T) {
	env := newHandlerEnv(t, HandlerOptions{})
	body := fmt.Sprintf(`{"streams":[{"stream":{"app":"pino"},"values":[["%d","hello",{"trace_id":"0af7651916cd43dd8448eb211c80319c"}]]}]}`, handlerNow.Add(-time.Minute).UnixNano())
	w := env.push(t, "application/json", []byte(body))
	if w.Code != http.StatusNoContent {
		t.Fatalf("push: %d %q", w.Code, w.Body)
	}
	// Without X-Scope-OrgID no tenant attribute is invented.
	if got, want := env.sink.records(), []string{"map[app:pino service.name:pino] | hello"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	lr := env.sink.logs[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	if got := lr.TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace id %q", got)
	}
}

func TestHandlerBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		want, reason      string
	}{
		{"corrupt snappy", "application/x-protobuf", []byte("\x20\x00garbage"), 400, "malformed", limits.ReasonUndecodable},
		{"broken JSON", "application/json", []byte(`{"streams":[`), 400, "malformed", limits.ReasonUndecodable},
		{"unknown content type", "text/plain", []byte("hello"), 415, "application/x-protobuf (snappy) or application/json", limits.ReasonUndecodable},
		{"bad labels", "application/x-protobuf", snappyPush(pbStream{labels: `{job=}`, entries: []pbEntry{{sec: sec(), line: "x"}}}), 400, "bad_labels", limits.ReasonInvalidLabel},
		{"labels missing", "application/json", []byte(`{"streams":[{"stream":{},"values":[["1767323045000000000","x"]]}]}`), 400, "bad_labels", limits.ReasonInvalidLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newHandlerEnv(t, HandlerOptions{})
			w := env.push(t, tc.contentType, tc.body)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%d %q, want %d with %q", w.Code, w.Body, tc.status, tc.want)
			}
			if got := env.rejected(tc.reason); got != 1 {
				t.Errorf("vigil_rejected_total{reason=%q} = %v, want 1", tc.reason, got)
			}
			if n := len(env.sink.records()); n != 0 {
				t.Errorf("%d records stored", n)
			}
		})
	}
}

// TestHandlerPartialAcceptance: what the limits refuse is named in a 400
// and counted, and everything else of the request is stored.
func TestHandlerPartialAcceptance(t *testing.T) {
	env := newHandlerEnv(t, HandlerOptions{MaxLineBytes: 10, Limits: limits.Limits{MaxPastAge: time.Hour}})
	body := snappyPush(
		pbStream{labels: `{app="a"}`, entries: []pbEntry{
			{sec: sec(), line: "short"},
			{sec: sec(), line: "this line is too long"},
			{sec: handlerNow.Add(-2 * time.Hour).Unix(), line: "old"},
		}},
		pbStream{labels: `{app="b"`, entries: []pbEntry{{sec: sec(), line: "bad"}}},
		pbStream{labels: `{app="c"}`, entries: []pbEntry{{sec: sec(), line: "kept"}}},
	)
	w := env.push(t, "application/x-protobuf", body)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
	for _, want := range []string{"line_too_long", "too_old", "bad_labels"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("answer %q does not name %s", w.Body, want)
		}
	}
	if got, want := env.sink.records(), []string{"map[app:a service.name:a] | short", "map[app:c service.name:c] | kept"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %q, want %q", got, want)
	}
	for reason, want := range map[string]float64{
		limits.ReasonLineTooLong: 1, limits.ReasonTimestampTooOld: 1, limits.ReasonInvalidLabel: 1,
	} {
		if got := env.rejected(reason); got != want {
			t.Errorf("vigil_rejected_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(env.metrics.Received.WithLabelValues(signal)); got != 5 {
		t.Errorf("received %v, want the 5 lines sent", got)
	}
}

func TestHandlerStreamLimits(t *testing.T) {
	tracker := limits.NewStreamTracker(limits.StreamLimits{MaxPerTenant: 3, MaxPerService: 2})
	env := newHandlerEnv(t, HandlerOptions{Streams: tracker})
	stream := func(svc, id string, lines int) pbStream {
		s := pbStream{labels: fmt.Sprintf(`{service_name=%q, request_id=%q}`, svc, id)}
		for i := range lines {
			s.entries = append(s.entries, pbEntry{sec: sec(), line: fmt.Sprint("line ", i)})
		}
		return s
	}
	// Two streams of api fill its share; a third of api is refused
	// while one of web still fits the tenant.
	w := env.push(t, "", snappyPush(stream("api", "1", 1), stream("api", "2", 1), stream("api", "3", 4), stream("web", "1", 1)))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "4 lines of new streams refused (stream_limit): service api has 2 active streams") {
		t.Errorf("%d %q", w.Code, w.Body)
	}
	if got := env.rejected(limits.ReasonStreamLimit); got != 4 {
		t.Errorf("stream_limit rejections %v, want 4", got)
	}
	if src := env.metrics.Sources.Recent(signal, limits.ReasonStreamLimit); len(src) != 1 || src[0].Source != "service.name=api via 192.0.2.1" {
		t.Errorf("stream_limit sources %+v, want the service that filled its limit", src)
	}
	if n := len(env.sink.records()); n != 3 {
		t.Errorf("%d records stored, want 3", n)
	}
	// Existing streams keep being written; the tenant is now full.
	w = env.push(t, "", snappyPush(stream("api", "1", 2), stream("web", "2", 1)))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "tenant fake has 3 active streams") {
		t.Errorf("%d %q", w.Code, w.Body)
	}
	// Another tenant has its own allowance.
	if w := env.push(t, "", snappyPush(stream("web", "2", 1)), TenantHeader, "other"); w.Code != http.StatusNoContent {
		t.Errorf("other tenant: %d %q", w.Code, w.Body)
	}
}

func TestHandlerRefusesWhenBusy(t *testing.T) {
	body := snappyPush(pbStream{labels: `{app="a"}`, entries: []pbEntry{{sec: sec(), line: "x"}}})
	t.Run("admission full", func(t *testing.T) {
		adm := ingest.NewAdmission(ingest.AdmissionOptions{MaxInFlight: 1})
		release, err := adm.Admit()
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		env := newHandlerEnv(t, HandlerOptions{Admission: adm, RetryAfter: 3 * time.Second})
		w := env.push(t, "", body)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "3" {
			t.Errorf("%d Retry-After %q, want 429 with 3", w.Code, w.Header().Get("Retry-After"))
		}
		if got := env.rejected(limits.ReasonOverloaded); got != 1 {
			t.Errorf("overloaded %v, want 1", got)
		}
	})
	t.Run("queue full", func(t *testing.T) {
		env := newHandlerEnv(t, HandlerOptions{Logs: &sink{err: fmt.Errorf("queue: %w", ingest.ErrOverloaded)}})
		w := env.push(t, "", body)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Errorf("%d Retry-After %q, want 429", w.Code, w.Header().Get("Retry-After"))
		}
	})
	t.Run("gate closed", func(t *testing.T) {
		g := gate.New(gate.Options{})
		s := &sink{}
		env := newHandlerEnv(t, HandlerOptions{Logs: g.Logs(s)})
		h := g.Wrap(env.h)
		g.Close()
		for _, handler := range []http.Handler{h, env.h} { // refused at the door, or with the body read
			req := httptest.NewRequest(http.MethodPost, PushPath, bytes.NewReader(body))
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("%d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
			}
		}
		if n := len(s.records()); n != 0 {
			t.Errorf("%d records stored past a closed gate", n)
		}
	})
	t.Run("storage failing", func(t *testing.T) {
		env := newHandlerEnv(t, HandlerOptions{Logs: &sink{err: errors.New("disk full")}})
		if w := env.push(t, "", body); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%d, want 503", w.Code)
		}
	})
}

func TestHandlerTooLarge(t *testing.T) {
	env := newHandlerEnv(t, HandlerOptions{Limits: limits.Limits{MaxRequestBytes: 1 << 10}})
	body := snappyPush(pbStream{labels: `{app="a"}`, entries: []pbEntry{{sec: sec(), line: strings.Repeat("a", 4<<10)}}})
	if w := env.push(t, "", body); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d %q, want 413", w.Code, w.Body)
	}
	if got := env.rejected(limits.ReasonRequestTooLarge); got != 1 {
		t.Errorf("request_too_large %v", got)
	}
}

func TestHandlerProbes(t *testing.T) {
	notReady := errors.New("storage is opening")
	var ready error
	env := newHandlerEnv(t, HandlerOptions{Ready: func() error { return ready }, Build: BuildInfo{Revision: "abc123", Branch: "main"}})
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		env.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := get(ReadyPath); w.Code != 200 || w.Body.String() != "ready\n" {
		t.Errorf("ready: %d %q", w.Code, w.Body)
	}
	ready = notReady
	if w := get(ReadyPath); w.Code != 503 || !strings.Contains(w.Body.String(), "storage is opening") {
		t.Errorf("not ready: %d %q", w.Code, w.Body)
	}
	w := get(BuildInfoPath)
	var bi map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &bi); err != nil || w.Code != 200 {
		t.Fatalf("buildinfo: %d %q %v", w.Code, w.Body, err)
	}
	for _, k := range []string{"version", "revision", "branch", "buildUser", "buildDate", "goVersion"} {
		if _, ok := bi[k]; !ok {
			t.Errorf("buildinfo lacks %s: %v", k, bi)
		}
	}
	if bi["version"] != LokiVersion || bi["revision"] != "abc123" {
		t.Errorf("buildinfo %v", bi)
	}
	if w := get(PushPath); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET push: %d %q", w.Code, w.Header().Get("Allow"))
	}
}

// FuzzHandlerPush sends arbitrary bodies through the whole handler, as
// protobuf and as JSON: whatever arrives, the answer is one a Loki client
// understands, and what is stored is what the answer says (nothing
// unless 204 or 400).
func FuzzHandlerPush(f *testing.F) {
	f.Add(pbPush(pbStream{labels: `{job="api", request_id="1"}`, entries: []pbEntry{{sec: sec(), line: "x"}}}), false)
	f.Add([]byte(`{"streams":[{"stream":{"app":"a"},"values":[["1767323045000000000","hello",{"trace_id":"0af7651916cd43dd8448eb211c80319c"}]]}]}`), true)
	f.Add([]byte(`{"streams":[{"stream":{},"values":[["x","y"]]}]}`), true)
	tracker := limits.NewStreamTracker(limits.StreamLimits{MaxPerTenant: 5, MaxPerService: 3})
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		env := newHandlerEnv(t, HandlerOptions{Streams: tracker, MaxLineBytes: 64, MaxLabelsPerStream: 4, Limits: limits.Limits{MaxRequestBytes: 1 << 16}})
		ct := "application/x-protobuf"
		if asJSON {
			ct = "application/json"
		} else {
			body = snappy.Encode(nil, body)
		}
		w := env.push(t, ct, body)
		switch w.Code {
		case http.StatusNoContent, http.StatusBadRequest:
		case http.StatusRequestEntityTooLarge:
			if n := len(env.sink.records()); n != 0 {
				t.Fatalf("413 with %d records stored", n)
			}
		default:
			t.Fatalf("status %d: %q", w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent && w.Body.Len() != 0 {
			t.Fatalf("204 with a body %q", w.Body)
		}
	})
}
