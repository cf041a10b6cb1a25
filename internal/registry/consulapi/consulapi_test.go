package consulapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/registry"
)

func newServer(t *testing.T) (*registry.Registry, *httptest.Server) {
	t.Helper()
	reg := registry.New(registry.Options{})
	h := NewHandler(Options{Registry: reg, NodeName: "vigil-test", Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	srv := httptest.NewServer(h)
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return reg, srv
}

func do(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

// TestBadRequests: what the agent endpoints refuse, and with which status.
func TestBadRequests(t *testing.T) {
	_, srv := newServer(t)
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "/v1/agent/service/register", `{`, 400},
		{"PUT", "/v1/agent/service/register", `{"ID":"a"}`, 400},
		{"PUT", "/v1/agent/service/register", `{"Name":"a","Check":{"TTL":"ten"}}`, 400},
		{"PUT", "/v1/agent/service/register", `{"Name":"a","Check":{"Interval":"10s"}}`, 400},
		{"PUT", "/v1/agent/service/deregister/nope", ``, 404},
		{"PUT", "/v1/agent/check/pass/service:nope", ``, 404},
		{"PUT", "/v1/agent/check/update/service:nope", `{"Status":"bogus"}`, 400},
		{"GET", "/v1/catalog/services?index=x", ``, 400},
		{"GET", "/v1/catalog/services?index=1&wait=soon", ``, 400},
		{"PUT", "/v1/agent/service/register", `{"Name":"a","Check":{"TTL":"10s"}}`, 200},
		{"PUT", "/v1/agent/service/register", `{"ID":"a/b","Name":"a","Check":{"TTL":"10s"}}`, 200},
		{"PUT", "/v1/agent/check/pass/service:a/b", ``, 200},
		{"PUT", "/v1/agent/service/deregister/a/b", ``, 200},
		{"PUT", "/v1/agent/service/register", `{"Name":"a","Tags":["` + strings.Repeat("x", 70<<10) + `"]}`, 400},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path, tc.body)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, resp.StatusCode, body, tc.code)
		}
	}
}

// TestBlockingQuery: a blocking query answers at a change with the new
// index, and at its wait with the same index.
func TestBlockingQuery(t *testing.T) {
	reg, srv := newServer(t)
	for _, path := range []string{"/v1/catalog/services", "/v1/health/service/shop", "/v1/catalog/service/shop"} {
		t.Run(path, func(t *testing.T) {
			idx, _ := reg.Watch()
			begin := time.Now()
			resp, _ := do(t, "GET", srv.URL+path+"?index="+itoa(idx)+"&wait=300ms", "")
			if got := resp.Header.Get("X-Consul-Index"); got != itoa(idx) || time.Since(begin) < 300*time.Millisecond {
				t.Fatalf("at timeout: index %s after %v, want %d after 300ms", got, time.Since(begin), idx)
			}
			go func() {
				time.Sleep(200 * time.Millisecond)
				_ = reg.Register(registry.Instance{ID: "shop-" + itoa(idx), Service: "shop"})
			}()
			begin = time.Now()
			resp, body := do(t, "GET", srv.URL+path+"?index="+itoa(idx)+"&wait=10s", "")
			if got := resp.Header.Get("X-Consul-Index"); got == itoa(idx) || time.Since(begin) > 5*time.Second {
				t.Fatalf("at change: index %s after %v, want a new one", got, time.Since(begin))
			}
			if !strings.Contains(body, "shop") {
				t.Fatalf("body %s", body)
			}
		})
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestConsulClient: the Go Consul client registers, reads the catalog and
// health, heartbeats and deregisters against the handler.
func TestConsulClient(t *testing.T) {
	_, srv := newServer(t)
	cfg := consul.DefaultConfig()
	cfg.Address = strings.TrimPrefix(srv.URL, "http://")
	c, err := consul.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	self, err := c.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" || self["Config"]["NodeName"] != "vigil-test" {
		t.Fatalf("Self: %v %v", self, err)
	}
	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "shop-1", Name: "shop", Address: "10.0.0.7", Port: 8080, Tags: []string{"v2"}, Meta: map[string]string{"version": "2.0.0"},
		Check: &consul.AgentServiceCheck{TTL: "10s", DeregisterCriticalServiceAfter: "1m"},
	}); err != nil {
		t.Fatal(err)
	}
	svcs, meta, err := c.Catalog().Services(nil)
	if err != nil || len(svcs["shop"]) != 1 || svcs["shop"][0] != "v2" || meta.LastIndex == 0 {
		t.Fatalf("Catalog().Services: %v %+v %v", svcs, meta, err)
	}
	cat, _, err := c.Catalog().Service("shop", "v2", nil)
	if err != nil || len(cat) != 1 || cat[0].ServiceAddress != "10.0.0.7" || cat[0].ServicePort != 8080 || cat[0].Datacenter != "dc1" {
		t.Fatalf("Catalog().Service: %+v %v", cat, err)
	}
	passing := func() []*consul.ServiceEntry {
		t.Helper()
		es, _, err := c.Health().Service("shop", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	if es := passing(); len(es) != 0 {
		t.Fatalf("passing before a heartbeat: %+v", es)
	}
	all, _, err := c.Health().Service("shop", "", false, nil)
	if err != nil || len(all) != 1 || all[0].Checks.AggregatedStatus() != consul.HealthCritical {
		t.Fatalf("Health().Service: %+v %v", all, err)
	}
	if err := c.Agent().PassTTL("service:shop-1", "ok"); err != nil {
		t.Fatal(err)
	}
	es := passing()
	if len(es) != 1 || es[0].Service.ID != "shop-1" || es[0].Service.Port != 8080 || es[0].Service.Meta["version"] != "2.0.0" ||
		es[0].Checks.AggregatedStatus() != consul.HealthPassing || es[0].Node.Node != "vigil-test" {
		t.Fatalf("passing after PassTTL: %+v", es)
	}
	if err := c.Agent().UpdateTTL("service:shop-1", "slow", consul.HealthWarning); err != nil {
		t.Fatal(err)
	}
	if es := passing(); len(es) != 0 {
		t.Fatalf("passing after a warning: %+v", es)
	}
	if err := c.Agent().FailTTL("service:shop-1", "down"); err != nil {
		t.Fatal(err)
	}
	checks, err := c.Agent().Checks()
	if err != nil || checks["service:shop-1"] == nil || checks["service:shop-1"].Status != consul.HealthCritical {
		t.Fatalf("Agent().Checks: %+v %v", checks, err)
	}
	services, err := c.Agent().Services()
	if err != nil || services["shop-1"] == nil || services["shop-1"].Service != "shop" {
		t.Fatalf("Agent().Services: %+v %v", services, err)
	}
	if err := c.Agent().ServiceDeregister("shop-1"); err != nil {
		t.Fatal(err)
	}
	svcs, _, err = c.Catalog().Services(nil)
	if err != nil || len(svcs) != 0 {
		t.Fatalf("after deregister: %v %v", svcs, err)
	}
}

// TestRegistryList: /api/v1/registry lists instances in vigil's envelope.
func TestRegistryList(t *testing.T) {
	reg, srv := newServer(t)
	if err := reg.Register(registry.Instance{ID: "a", Service: "shop", Port: 1, Meta: map[string]string{"version": "1"},
		Checks: []registry.CheckSpec{{Type: registry.TTL, TTL: time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	_, body := do(t, "GET", srv.URL+RegistryPath, "")
	var got struct {
		Status string
		Data   []Instance
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "success" || len(got.Data) != 1 || got.Data[0].Health != "critical" || got.Data[0].Version != "1" ||
		got.Data[0].Address != "127.0.0.1" || len(got.Data[0].Checks) != 1 || got.Data[0].Checks[0].TTL != "1m0s" {
		t.Fatalf("%s", body)
	}
}

// TestMetrics: instances by health and heartbeats by status.
func TestMetrics(t *testing.T) {
	reg := registry.New(registry.Options{})
	pr := prometheus.NewRegistry()
	h := NewHandler(Options{Registry: reg, Registerer: pr})
	srv := httptest.NewServer(h)
	defer srv.Close()
	do(t, "PUT", srv.URL+"/v1/agent/service/register", `{"ID":"a","Name":"shop","Check":{"TTL":"10s"}}`)
	do(t, "PUT", srv.URL+"/v1/agent/service/register", `{"ID":"b","Name":"shop","Check":{"TTL":"10s"}}`)
	do(t, "PUT", srv.URL+"/v1/agent/check/pass/service:a", "")
	do(t, "PUT", srv.URL+"/v1/agent/check/pass/service:nope", "")
	want := `
# HELP vigil_registry_heartbeats_total TTL check updates received, by the status they set (unknown: refused).
# TYPE vigil_registry_heartbeats_total counter
vigil_registry_heartbeats_total{status="passing"} 1
vigil_registry_heartbeats_total{status="unknown"} 1
# HELP vigil_registry_instances Registered service instances, by health.
# TYPE vigil_registry_instances gauge
vigil_registry_instances{health="critical"} 1
vigil_registry_instances{health="passing"} 1
vigil_registry_instances{health="warning"} 0
`
	if err := testutil.GatherAndCompare(pr, strings.NewReader(want), "vigil_registry_heartbeats_total", "vigil_registry_instances"); err != nil {
		t.Error(err)
	}
}

// TestBlockingQueryAnswersAtOnce: an index other than the current one
// (one from before a restart, larger than any now) answers at once, and a
// waiting query answers when the handler stops.
func TestBlockingQueryAnswersAtOnce(t *testing.T) {
	reg := registry.New(registry.Options{})
	h := NewHandler(Options{Registry: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	srv := httptest.NewServer(h)
	defer srv.Close()

	begin := time.Now()
	do(t, "GET", srv.URL+"/v1/catalog/services?index=999999&wait=10s", "")
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("an index from before a restart waited %v", d)
	}
	idx, _ := reg.Watch()
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	begin = time.Now()
	resp, _ := do(t, "GET", srv.URL+"/v1/health/service/shop?index="+itoa(idx)+"&wait=10s", "")
	if d := time.Since(begin); d > 5*time.Second || resp.StatusCode != http.StatusOK {
		t.Errorf("at stop: %d after %v, want 200 at once", resp.StatusCode, d)
	}
	<-done
}

// TestGoldenShapes pins the answers' JSON shapes, which Consul's clients
// and consul_sd_configs decode.
func TestGoldenShapes(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	reg := registry.New(registry.Options{Now: func() time.Time { return at }})
	srv := httptest.NewServer(NewHandler(Options{Registry: reg, NodeName: "node-a", NodeAddress: "10.0.0.1"}))
	defer srv.Close()
	for _, body := range []string{
		`{"ID":"shop-1","Name":"shop","Address":"10.0.0.7","Port":8080,"Tags":["v2","canary"],"Meta":{"version":"2.0.0"},"Check":{"TTL":"15s","DeregisterCriticalServiceAfter":"90s"}}`,
		`{"ID":"shop-2","Name":"shop","Address":"10.0.0.8","Port":8080,"Checks":[{"HTTP":"http://10.0.0.8:8080/health","Interval":"10s"},{"TTL":"30s","Status":"warning"}]}`,
	} {
		if resp, b := do(t, "PUT", srv.URL+"/v1/agent/service/register", body); resp.StatusCode != 200 {
			t.Fatalf("register: %d %s", resp.StatusCode, b)
		}
	}
	do(t, "PUT", srv.URL+"/v1/agent/check/pass/service:shop-1?note=ok", "")
	for _, tc := range []struct{ path, golden string }{
		{"/v1/agent/self", "agent_self.json"},
		{"/v1/catalog/services", "catalog_services.json"},
		{"/v1/catalog/service/shop", "catalog_service.json"},
		{"/v1/health/service/shop", "health_service.json"},
		{"/v1/health/service/shop?passing", "health_service_passing.json"},
		{RegistryPath, "registry.json"},
	} {
		resp, body := do(t, "GET", srv.URL+tc.path, "")
		if resp.StatusCode != 200 || resp.Header.Get("X-Consul-Index") == "" && tc.path != RegistryPath {
			t.Errorf("%s: %d, X-Consul-Index %q", tc.path, resp.StatusCode, resp.Header.Get("X-Consul-Index"))
		}
		goldentest.CompareJSON(t, tc.golden, []byte(body))
	}
}
