package shop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// services in port order: gateway on PortBase, payments on PortBase+3.
var services = []string{nameGateway, nameCatalog, nameOrders, namePayments}

// syncBuffer collects the services' JSON log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines, decoded.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shopRun is one Run of the shop under test.
type shopRun struct {
	t      *testing.T
	base   int
	recv   *receiver
	out    *syncBuffer
	client *http.Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startShop runs the shop with faults, an in-process OTLP receiver and no
// load, and returns once every service is ready.
func startShop(t *testing.T, faults ...string) *shopRun {
	t.Helper()
	return startShopWith(t, Options{Faults: faults})
}

// startShopWith is startShop with more options; the endpoint, ports and
// log outputs are the test's.
func startShopWith(t *testing.T, opts Options) *shopRun {
	t.Helper()
	for range 5 {
		r := &shopRun{
			t:      t,
			base:   testport.Run(t, 4),
			recv:   startReceiver(t),
			out:    &syncBuffer{},
			client: &http.Client{Timeout: 10 * time.Second},
			done:   make(chan error, 1),
		}
		var ctx context.Context
		ctx, r.cancel = context.WithCancel(context.Background())
		opts.OTLPEndpoint, opts.PortBase, opts.LogOutput = r.recv.addr, r.base, r.out
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
		go func() { r.done <- Run(ctx, opts) }()
		err := r.waitReady()
		if err == nil {
			t.Cleanup(func() { r.stop() })
			return r
		}
		r.cancel()
		if errors.Is(err, syscall.EADDRINUSE) {
			t.Logf("port taken, retrying: %v", err)
			continue
		}
		t.Fatalf("shop did not start: %v", err)
	}
	t.Fatal("shop did not start: ports kept being taken")
	return nil
}

// waitReady polls every service's /readyz until all answer 200, or returns
// Run's error if it ends first.
func (r *shopRun) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.done:
			return fmt.Errorf("Run returned early: %w", err)
		default:
		}
		ready := 0
		for i := range services {
			if code, _ := r.get(i, "/readyz"); code == http.StatusOK {
				ready++
			}
		}
		if ready == len(services) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("services not ready")
}

// stop ends Run and waits for it: after that every span and log record has
// reached the receiver.
func (r *shopRun) stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("Run: %v", err)
		}
	})
}

// url is a service's base URL by port offset.
func (r *shopRun) url(i int) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(r.base+i))
}

// get fetches path from the i-th service; code 0 means no response.
func (r *shopRun) get(i int, path string) (int, string) {
	code, body, err := call(context.Background(), r.client, http.MethodGet, r.url(i)+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	return code, string(body)
}

// gateway calls the gateway and returns the status code.
func (r *shopRun) gateway(method, path string, body any) int {
	r.t.Helper()
	code, b, err := call(context.Background(), r.client, method, r.url(0)+path, body)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	r.t.Logf("%s %s: %d %s", method, path, code, bytes.TrimSpace(b))
	return code
}

func (r *shopRun) order(productID int) int {
	return r.gateway(http.MethodPost, "/orders", orderRequest{ProductID: productID, Quantity: 2, CardNumber: testCard})
}

// metrics scrapes the i-th service's /metrics.
func (r *shopRun) metrics(i int) string {
	r.t.Helper()
	code, body := r.get(i, "/metrics")
	if code != http.StatusOK {
		r.t.Fatalf("%s /metrics: %d %s", services[i], code, body)
	}
	return body
}

// spansWhere returns the received spans of service, kind and name.
func spansWhere(spans []span, service string, kind tracepb.Span_SpanKind, name string) []span {
	var out []span
	for _, s := range spans {
		if s.service == service && s.Kind == kind && s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// only returns the single span matching, failing otherwise.
func only(t *testing.T, spans []span, service string, kind tracepb.Span_SpanKind, name string) span {
	t.Helper()
	got := spansWhere(spans, service, kind, name)
	if len(got) != 1 {
		t.Fatalf("want one %s %s span %q, got %d (all: %v)", service, kind, name, len(got), describe(spans))
	}
	return got[0]
}

func describe(spans []span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, fmt.Sprintf("%s/%s/%q trace=%s", s.service, s.Kind, s.Name, s.traceID()))
	}
	return out
}

func logsWhere(logs []logRecord, service, body string) []logRecord {
	var out []logRecord
	for _, l := range logs {
		if l.service == service && l.Body.GetStringValue() == body {
			out = append(out, l)
		}
	}
	return out
}

const redacted = "[REDACTED]"

func TestShopTraceLogsMetricsHealth(t *testing.T) {
	r := startShop(t)
	if code := r.gateway(http.MethodGet, "/products", nil); code != http.StatusOK {
		t.Errorf("GET /products: %d", code)
	}
	if code := r.gateway(http.MethodGet, "/products/3", nil); code != http.StatusOK {
		t.Errorf("GET /products/3: %d", code)
	}
	if code := r.gateway(http.MethodGet, "/products/999", nil); code != http.StatusNotFound {
		t.Errorf("GET /products/999: %d, want 404", code)
	}
	if code := r.order(3); code != http.StatusCreated {
		t.Fatalf("POST /orders: %d", code)
	}
	for i, name := range services {
		if code, body := r.get(i, "/healthz"); code != http.StatusOK {
			t.Errorf("%s /healthz: %d %s", name, code, body)
		}
	}
	for i, name := range services {
		m := r.metrics(i)
		for _, want := range []string{"http_server_request_duration_seconds_bucket", "go_goroutines", name + "_build_info"} {
			if !strings.Contains(m, want) {
				t.Errorf("%s /metrics lacks %s", name, want)
			}
		}
	}
	if m := r.metrics(3); !strings.Contains(m, `grpc_server_handling_seconds_count{grpc_code="OK",grpc_method="Charge",grpc_service="shop.Payments"} 1`) {
		t.Errorf("payments /metrics lacks the Charge call:\n%s", grep(m, "grpc_server"))
	}
	if m := r.metrics(2); !strings.Contains(m, `grpc_client_handling_seconds_count{grpc_code="OK",grpc_method="Charge",grpc_service="shop.Payments"} 1`) {
		t.Errorf("orders /metrics lacks the Charge call:\n%s", grep(m, "grpc_client"))
	}
	r.stop()

	all := r.recv.spans()
	root := only(t, all, nameGateway, tracepb.Span_SPAN_KIND_SERVER, "POST /orders")
	if root.parentID() != "" {
		t.Errorf("gateway's POST /orders span has a parent %s", root.parentID())
	}
	var trace []span
	byID := map[string]span{}
	seen := map[string]bool{}
	for _, s := range all {
		if s.traceID() == root.traceID() {
			trace = append(trace, s)
			byID[s.spanID()] = s
			seen[s.service] = true
		}
	}
	for _, name := range services {
		if !seen[name] {
			t.Errorf("the order's trace has no %s span: %v", name, describe(trace))
		}
	}
	// Each hop: callee's server span ← caller's client span ← caller's
	// server span.
	hops := []struct {
		server       span
		clientSvc    string
		clientName   string
		callerServer span
	}{
		{only(t, trace, nameCatalog, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}"), nameGateway, "GET", root},
		{only(t, trace, nameOrders, tracepb.Span_SPAN_KIND_SERVER, "POST /orders"), nameGateway, "POST", root},
	}
	ordersSrv := hops[1].server
	hops = append(hops, struct {
		server       span
		clientSvc    string
		clientName   string
		callerServer span
	}{only(t, trace, namePayments, tracepb.Span_SPAN_KIND_SERVER, "shop.Payments/Charge"), nameOrders, "shop.Payments/Charge", ordersSrv})
	for _, h := range hops {
		client, ok := byID[h.server.parentID()]
		if !ok {
			t.Errorf("%s %q: parent %s not in the trace", h.server.service, h.server.Name, h.server.parentID())
			continue
		}
		if client.service != h.clientSvc || client.Kind != tracepb.Span_SPAN_KIND_CLIENT || client.Name != h.clientName {
			t.Errorf("%s %q: parent is %s %s %q, want %s client %q", h.server.service, h.server.Name,
				client.service, client.Kind, client.Name, h.clientSvc, h.clientName)
		}
		if client.parentID() != h.callerServer.spanID() {
			t.Errorf("%s client span %q: parent %s, want %s's server span %s", client.service, client.Name,
				client.parentID(), h.callerServer.service, h.callerServer.spanID())
		}
	}

	// Logs over OTLP: in the trace, card numbers redacted.
	logs := r.recv.logRecords()
	for _, c := range []struct{ service, body string }{
		{nameGateway, "order relayed"},
		{nameCatalog, "product fetched"},
		{nameOrders, "placing order"},
		{nameOrders, "order placed"},
		{namePayments, "charging card"},
	} {
		found := false
		for _, l := range logsWhere(logs, c.service, c.body) {
			if l.traceID() == root.traceID() {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s log %q exported in trace %s", c.service, c.body, root.traceID())
		}
	}
	for _, c := range []struct{ service, body string }{{nameOrders, "placing order"}, {namePayments, "charging card"}} {
		for _, l := range logsWhere(logs, c.service, c.body) {
			if got := l.attr("card_number"); got != redacted {
				t.Errorf("%s %q exported card_number %q, want %q", c.service, c.body, got, redacted)
			}
		}
	}

	// The JSON lines: same trace id, card redacted, and the number nowhere.
	var charged bool
	for _, m := range r.out.lines(t) {
		if m["service"] == namePayments && m["msg"] == "charging card" {
			charged = true
			if m["trace_id"] != root.traceID() {
				t.Errorf("payments log trace_id %v, want %s", m["trace_id"], root.traceID())
			}
			if m["card_number"] != redacted {
				t.Errorf("payments log card_number %v, want %s", m["card_number"], redacted)
			}
		}
	}
	if !charged {
		t.Error(`no payments "charging card" JSON line`)
	}
	if strings.Contains(r.out.String(), testCard) {
		t.Error("the card number appears in the services' logs")
	}
}

// grep returns the lines of s containing sub, for failure messages.
func grep(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

func TestShopFaults(t *testing.T) {
	tests := []struct {
		fault string
		// run drives the shop, stops it and checks the telemetry.
		run func(t *testing.T, r *shopRun)
	}{
		{faultDropContext, func(t *testing.T, r *shopRun) {
			if code := r.gateway(http.MethodGet, "/products/3", nil); code != http.StatusOK {
				t.Fatalf("GET /products/3: %d", code)
			}
			r.stop()
			all := r.recv.spans()
			gw := only(t, all, nameGateway, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}")
			cat := only(t, all, nameCatalog, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}")
			if cat.traceID() == gw.traceID() {
				t.Errorf("catalog span joined the gateway's trace %s", gw.traceID())
			}
			if cat.parentID() != "" {
				t.Errorf("catalog span has parent %s, want a new root", cat.parentID())
			}
			if got := spansWhere(all, nameGateway, tracepb.Span_SPAN_KIND_CLIENT, "GET"); len(got) != 0 {
				t.Errorf("gateway recorded %d client spans with a plain http.Client", len(got))
			}
		}},
		{faultClockSkew, func(t *testing.T, r *shopRun) {
			if code := r.gateway(http.MethodGet, "/products/3", nil); code != http.StatusOK {
				t.Fatalf("GET /products/3: %d", code)
			}
			r.stop()
			all := r.recv.spans()
			call := only(t, all, nameGateway, tracepb.Span_SPAN_KIND_CLIENT, "GET")
			cat := only(t, all, nameCatalog, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}")
			if cat.traceID() != call.traceID() || cat.parentID() != call.spanID() {
				t.Errorf("catalog span is not the child of the gateway's call: context must still propagate")
			}
			// Stamped by a clock 3 minutes behind: it starts and ends 3
			// minutes (give or take the call's own second) before the call.
			for what, d := range map[string]int64{
				"start": int64(cat.StartTimeUnixNano) - int64(call.StartTimeUnixNano),
				"end":   int64(cat.EndTimeUnixNano) - int64(call.EndTimeUnixNano),
			} {
				if off := time.Duration(d); (off - clockSkew).Abs() > time.Second {
					t.Errorf("catalog's %s is %s from the call's, want about %s", what, off, clockSkew)
				}
			}
			// The others' clocks are right.
			gw := only(t, all, nameGateway, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}")
			if d := time.Duration(int64(call.StartTimeUnixNano) - int64(gw.StartTimeUnixNano)); d < 0 || d > time.Second {
				t.Errorf("gateway's call starts %s after its handler", d)
			}
		}},
		{faultLogWithoutContext, func(t *testing.T, r *shopRun) {
			if code := r.order(4); code != http.StatusCreated {
				t.Fatalf("POST /orders: %d", code)
			}
			r.stop()
			logs := r.recv.logRecords()
			placed := logsWhere(logs, nameOrders, "order placed")
			if len(placed) != 1 {
				t.Fatalf("want one orders \"order placed\" record, got %d", len(placed))
			}
			if id := placed[0].traceID(); id != "" {
				t.Errorf("orders log has trace id %s, want none", id)
			}
			// The contrast: payments, which logs with its context, still joins.
			charging := logsWhere(logs, namePayments, "charging card")
			if len(charging) != 1 || charging[0].traceID() == "" {
				t.Errorf("payments log lost its trace id too: %v", charging)
			}
			for _, m := range r.out.lines(t) {
				if m["service"] == nameOrders && m["msg"] == "order placed" {
					if _, ok := m["trace_id"]; ok {
						t.Errorf("orders JSON line has trace_id %v", m["trace_id"])
					}
				}
			}
		}},
		{faultErrors, func(t *testing.T, r *shopRun) {
			codes := map[int]int{}
			for i := range 10 {
				codes[r.order(i%catalogSize+1)]++
			}
			if codes[http.StatusBadGateway] == 0 || codes[http.StatusCreated] == 0 {
				t.Errorf("want both 201s and 502s, got %v", codes)
			}
			m := r.metrics(3)
			if !strings.Contains(m, `grpc_code="Unavailable"`) {
				t.Errorf("payments metrics lack Unavailable:\n%s", grep(m, "grpc_server_handling_seconds_count"))
			}
			r.stop()
			all := r.recv.spans()
			for _, c := range []struct {
				service string
				kind    tracepb.Span_SpanKind
				name    string
			}{
				{namePayments, tracepb.Span_SPAN_KIND_SERVER, "shop.Payments/Charge"},
				{nameOrders, tracepb.Span_SPAN_KIND_CLIENT, "shop.Payments/Charge"},
				{nameOrders, tracepb.Span_SPAN_KIND_SERVER, "POST /orders"},
				{nameGateway, tracepb.Span_SPAN_KIND_SERVER, "POST /orders"},
			} {
				errs := 0
				for _, s := range spansWhere(all, c.service, c.kind, c.name) {
					if s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
						errs++
					}
				}
				if errs != codes[http.StatusBadGateway] {
					t.Errorf("%s %s %q: %d error spans, want %d (one per 502)", c.service, c.kind, c.name, errs, codes[http.StatusBadGateway])
				}
			}
		}},
		{faultPanic, func(t *testing.T, r *shopRun) {
			if code := r.gateway(http.MethodGet, "/products/10", nil); code != http.StatusBadGateway {
				t.Errorf("GET /products/10: %d, want 502", code)
			}
			// Still serving after the panic.
			if code := r.gateway(http.MethodGet, "/products/3", nil); code != http.StatusOK {
				t.Errorf("GET /products/3 after the panic: %d", code)
			}
			if code, body := r.get(1, "/livez"); code != http.StatusOK {
				t.Errorf("catalog /livez after the panic: %d %s", code, body)
			}
			r.stop()
			var panicked, fine int
			for _, s := range spansWhere(r.recv.spans(), nameCatalog, tracepb.Span_SPAN_KIND_SERVER, "GET /products/{id}") {
				if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
					fine++
					continue
				}
				for _, e := range s.Events {
					if e.Name == "exception" && strings.Contains(attrString(e.Attributes, "exception.message"), "product 10") {
						panicked++
					}
				}
			}
			if panicked == 0 {
				t.Error("no catalog error span with an exception event for the panic")
			}
			if fine != 1 {
				t.Errorf("%d successful catalog spans, want 1", fine)
			}
		}},
		{faultUnregisteredMetrics, func(t *testing.T, r *shopRun) {
			if code := r.gateway(http.MethodGet, "/products/3", nil); code != http.StatusOK {
				t.Fatalf("GET /products/3: %d", code)
			}
			m := r.metrics(1)
			for _, missing := range []string{"go_goroutines", "http_server_request_duration_seconds", "catalog_build_info"} {
				if strings.Contains(m, missing) {
					t.Errorf("catalog /metrics has %s", missing)
				}
			}
			if !strings.Contains(m, "catalog_products_served_total 1") {
				t.Errorf("catalog /metrics lacks its own counter:\n%s", m)
			}
			if g := r.metrics(0); !strings.Contains(g, "go_goroutines") {
				t.Error("gateway /metrics lacks go_goroutines")
			}
			if code, _ := r.get(1, "/healthz"); code != http.StatusOK {
				t.Errorf("catalog /healthz: %d", code)
			}
		}},
		{faultSlowPayments, func(t *testing.T, r *shopRun) {
			for _, id := range []int{1, 2} {
				if code := r.order(id); code != http.StatusCreated {
					t.Fatalf("POST /orders: %d", code)
				}
			}
			r.stop()
			charges := spansWhere(r.recv.spans(), namePayments, tracepb.Span_SPAN_KIND_SERVER, "shop.Payments/Charge")
			if len(charges) != 2 {
				t.Fatalf("%d payment spans, want 2", len(charges))
			}
			for _, s := range charges {
				if d := time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano); d < 300*time.Millisecond {
					t.Errorf("payment span took %v, want ≥ 300ms", d)
				}
			}
		}},
	}
	// bad-config needs a configuration centre: TestBadConfigFault.
	if got, want := len(tests)+1, len(Faults()); got != want {
		t.Errorf("%d fault cases for %d faults", got, want)
	}
	for _, tc := range tests {
		t.Run(tc.fault, func(t *testing.T) {
			tc.run(t, startShop(t, tc.fault))
		})
	}
}

func TestLoadGenerator(t *testing.T) {
	r := startShopWith(t, Options{RPS: 200})
	// Wait (bounded) until the gateway has served every kind of request the
	// generator sends; what is asserted is that they arrive, not how fast.
	routes := []string{`route="/products"`, `route="/products/{id}"`, `route="/orders"`}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := grep(r.metrics(0), "http_server_request_duration_seconds_count")
		missing := slices.DeleteFunc(slices.Clone(routes), func(rt string) bool { return strings.Contains(m, rt) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never served %v:\n%s", missing, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	if n := len(spansWhere(r.recv.spans(), namePayments, tracepb.Span_SPAN_KIND_SERVER, "shop.Payments/Charge")); n == 0 {
		t.Error("load reached no payment")
	}
}

func TestFaults(t *testing.T) {
	got := Faults()
	want := []string{"bad-config", "clock-skew", "drop-context", "errors", "log-without-context", "panic", "slow-payments", "unregistered-metrics"}
	if !slices.Equal(got, want) {
		t.Errorf("Faults() = %v, want %v", got, want)
	}
	for _, f := range got {
		if FaultHelp(f) == "" {
			t.Errorf("fault %q has no help", f)
		}
	}
}

func TestRunRejectsUnknownFault(t *testing.T) {
	tests := []struct {
		faults []string
		want   error
	}{
		{[]string{"nope"}, ErrUnknownFault},
		{[]string{faultPanic, "Panic"}, ErrUnknownFault},
		{[]string{faultBadConfig}, ErrNoConfigCentre}, // no ConfigURL, no VIGIL_URL
	}
	t.Setenv("VIGIL_URL", "")
	for _, tc := range tests {
		t.Run(strings.Join(tc.faults, ","), func(t *testing.T) {
			// No service may start: Run must fail before listening, so the
			// port (one nothing listens on) is never touched.
			err := Run(t.Context(), Options{Faults: tc.faults, PortBase: 1, LogOutput: io.Discard})
			if !errors.Is(err, tc.want) {
				t.Errorf("Run = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRunRefusesPortInUse: with any one of the four ports taken, Run fails
// before starting anything: ErrListen naming the service and the port, no
// "shop running" record, and the other ports released.
func TestRunRefusesPortInUse(t *testing.T) {
	for i, name := range []string{nameGateway, nameCatalog, nameOrders, namePayments} {
		t.Run(name, func(t *testing.T) {
			base := testport.Run(t, 4)
			taken, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				t.Fatalf("port %d taken by someone else meanwhile: %v", base+i, err)
			}
			defer taken.Close()
			var logs syncBuffer
			err = Run(t.Context(), Options{
				OTLPEndpoint: "127.0.0.1:1", PortBase: base, LogOutput: io.Discard,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if !errors.Is(err, ErrListen) || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("Run = %v, want ErrListen wrapping EADDRINUSE", err)
			}
			if want := name + " on 127.0.0.1:" + strconv.Itoa(base+i); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if strings.Contains(logs.String(), "shop running") {
				t.Errorf("claimed to run:\n%s", logs.String())
			}
			for p := base; p < base+4; p++ {
				if p == base+i {
					continue
				}
				ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
				if err != nil {
					t.Errorf("port %d left bound: %v", p, err)
					continue
				}
				ln.Close()
			}
		})
	}
}

// TestLogRecordsNameServiceOnce: every JSON log line of the shop's
// services, its own and the SDK's (serving, stopped serving), carries the
// service key exactly once.
func TestLogRecordsNameServiceOnce(t *testing.T) {
	r := startShop(t)
	if code, body := r.get(0, "/products"); code != http.StatusOK {
		t.Fatalf("GET /products: %d %s", code, body)
	}
	r.stop()
	lines := strings.Split(strings.TrimSpace(r.out.String()), "\n")
	seen := map[string]bool{}
	for _, line := range lines {
		if n := strings.Count(line, `"service":`); n != 1 {
			t.Errorf("%d service keys in %s", n, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err == nil {
			seen[fmt.Sprint(m["msg"])] = true
		}
	}
	for _, msg := range []string{"serving", "stopped serving; flushing telemetry"} {
		if !seen[msg] {
			t.Errorf("no %q record among %d lines", msg, len(lines))
		}
	}
}
