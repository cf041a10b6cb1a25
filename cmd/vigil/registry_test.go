package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/vigil-observability/vigil/internal/testport"
)

// consulClient is the Go Consul client pointed at s's web listener.
func consulClient(t *testing.T, s *server) *consul.Client {
	t.Helper()
	cfg := consul.DefaultConfig()
	cfg.Address = strings.TrimPrefix(s.httpURL, "http://")
	c, err := consul.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegistryConsulClient: against a running vigil, the Go Consul client
// registers an instance, finds it in the catalog and, once it heartbeats,
// among the passing instances; an instance that stops heartbeating turns
// critical within its TTL and leaves after its deregister-after period;
// a deregistered one leaves at once.
func TestRegistryConsulClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := consulClient(t, s)
	for _, id := range []string{"shop-1", "shop-2"} {
		if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
			ID: id, Name: "shop", Address: "127.0.0.1", Port: 8080, Tags: []string{"v1"}, Meta: map[string]string{"version": "1.0.0"},
			Check: &consul.AgentServiceCheck{TTL: "2s", DeregisterCriticalServiceAfter: "2s"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	svcs, _, err := c.Catalog().Services(nil)
	if err != nil || len(svcs["shop"]) != 1 {
		t.Fatalf("catalog services: %v %v", svcs, err)
	}
	cat, _, err := c.Catalog().Service("shop", "", nil)
	if err != nil || len(cat) != 2 {
		t.Fatalf("catalog service: %+v %v", cat, err)
	}
	passing := func() []string {
		es, _, err := c.Health().Service("shop", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.Service.ID)
		}
		return ids
	}
	if ids := passing(); len(ids) != 0 {
		t.Fatalf("passing before any heartbeat: %v", ids)
	}

	// shop-1 heartbeats; shop-2 is deregistered.
	if err := c.Agent().PassTTL("service:shop-1", ""); err != nil {
		t.Fatal(err)
	}
	if ids := passing(); len(ids) != 1 || ids[0] != "shop-1" {
		t.Fatalf("passing after a heartbeat: %v", ids)
	}
	if err := c.Agent().ServiceDeregister("shop-2"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.httpURL + "/api/v1/registry")
	if err != nil {
		t.Fatal(err)
	}
	var listing struct {
		Status string
		Data   []struct{ ID, Service, Version, Health string }
	}
	err = json.NewDecoder(resp.Body).Decode(&listing)
	resp.Body.Close()
	if err != nil || listing.Status != "success" || len(listing.Data) != 1 || listing.Data[0].ID != "shop-1" ||
		listing.Data[0].Health != "passing" || listing.Data[0].Version != "1.0.0" {
		t.Fatalf("/api/v1/registry: %+v %v", listing, err)
	}

	// A blocking query on the health of shop wakes when shop-1's TTL
	// runs out, within the TTL and a tick of the expiry.
	_, meta, err := c.Health().Service("shop", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	waitFor(t, "shop-1 to turn critical without heartbeats", 10*time.Second, func() bool {
		es, m, err := c.Health().Service("shop", "", false, &consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		meta = m
		return len(es) == 1 && es[0].Checks.AggregatedStatus() == consul.HealthCritical
	})
	if d := time.Since(begin); d > 4*time.Second {
		t.Errorf("critical after %v, want within the 2s TTL and a tick", d)
	}
	waitFor(t, "shop-1 to be removed after its deregister-after period", 10*time.Second, func() bool {
		svcs, _, err := c.Catalog().Services(nil)
		return err == nil && len(svcs) == 0
	})
}

// TestRegistryConsulSD: Prometheus's own consul_sd_configs, in vigil's
// scrape_configs and pointed at vigil itself, discovers an instance
// registered in vigil (vigil, so there is something to scrape) with
// Consul's meta labels, scrapes it, and drops it once deregistered.
// Debian's prometheus binary is built without Consul discovery, so it
// cannot play this part; vigil's scrape uses Prometheus's discovery
// packages, Consul's among them.
func TestRegistryConsulSD(t *testing.T) {
	t.Parallel()
	addr := testport.Addr(t)
	cfg := writeConfig(t, fmt.Sprintf(`global:
  scrape_interval: 1s
registry:
  scrape: false # only the consul job, not the implicit one
scrape_configs:
  - job_name: consul
    consul_sd_configs:
      - server: %q
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: service
      - source_labels: [__meta_consul_service_metadata_version]
        target_label: version
`, addr))
	s := startServer(t, t.TempDir(), "--http-addr", addr, "--config", cfg)
	c := consulClient(t, s)
	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "vigil-1", Name: "vigil", Address: host, Port: portN, Tags: []string{"observability"},
		Meta:  map[string]string{"version": "test"},
		Check: &consul.AgentServiceCheck{TTL: "1m", Status: consul.HealthPassing},
	}); err != nil {
		t.Fatal(err)
	}

	type target struct {
		Labels           map[string]string
		DiscoveredLabels map[string]string
		Health           string
	}
	targets := func() []target {
		resp, err := http.Get(s.httpURL + "/api/v1/targets?state=active")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var body struct {
			Data struct{ ActiveTargets []target }
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return nil
		}
		return body.Data.ActiveTargets
	}
	waitFor(t, "consul_sd_configs to discover vigil and the scrape to succeed", time.Minute, func() bool {
		ts := targets()
		return len(ts) == 1 && ts[0].Health == "up" && ts[0].Labels["service"] == "vigil" && ts[0].Labels["version"] == "test" &&
			ts[0].Labels["instance"] == addr && ts[0].DiscoveredLabels["__meta_consul_tags"] == ",observability,"
	})
	waitFor(t, "the scraped series to be queryable", time.Minute, func() bool {
		up := s.promQuery(t, `up{job="consul",service="vigil"}`)
		return len(up) == 1 && up[0].Value[1] == "1"
	})
	if err := c.Agent().ServiceDeregister("vigil-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deregistered instance to leave the targets", time.Minute, func() bool {
		ts := targets()
		return ts != nil && len(ts) == 0
	})
}

// TestRegistryZeroConfigScrape: with no scrape config, an instance
// registered in vigil (vigil itself, so there is something to scrape) is
// scraped as job=<service>, instance=<id>, with its version, under the
// implicit job "registry", and leaves the targets once deregistered.
func TestRegistryZeroConfigScrape(t *testing.T) {
	t.Parallel()
	addr := testport.Addr(t)
	cfg := writeConfig(t, "global:\n  scrape_interval: 1s\n")
	s := startServer(t, t.TempDir(), "--http-addr", addr, "--config", cfg)
	c := consulClient(t, s)
	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "vigil-1", Name: "vigil", Address: host, Port: portN,
		Meta:  map[string]string{"version": "test"},
		Check: &consul.AgentServiceCheck{TTL: "1m", Status: consul.HealthPassing},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registered instance to be scraped", time.Minute, func() bool {
		up := s.promQuery(t, `up{job="vigil",instance="vigil-1",service="vigil",version="test"}`)
		return len(up) == 1 && up[0].Value[1] == "1"
	})
	if err := c.Agent().ServiceDeregister("vigil-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deregistered instance to leave the targets", time.Minute, func() bool {
		resp, err := http.Get(s.httpURL + "/api/v1/targets?state=active&scrapePool=registry")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Data struct{ ActiveTargets []json.RawMessage }
		}
		return json.NewDecoder(resp.Body).Decode(&body) == nil && len(body.Data.ActiveTargets) == 0
	})

	// The join and the leave are change events.
	resp, err := http.Get(s.httpURL + "/api/v1/changes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct{ Kind, Action, Service, Instance, To, From, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range body.Data {
		if ch.Kind == "registry" {
			got = append(got, ch.Action+" "+ch.Service+" "+ch.Instance+" "+ch.To+ch.From+" "+ch.Message)
		}
	}
	if want := []string{"join vigil vigil-1 test " + addr, "leave vigil vigil-1 test deregistered"}; !slices.Equal(got, want) {
		t.Fatalf("registry changes %q, want %q", got, want)
	}
}

// TestRegistryAuth: with authentication on, the Go Consul client registers
// with the ingest token in its own X-Consul-Token header, a read-only token
// may read but not register, and no token gets 401.
func TestRegistryAuth(t *testing.T) {
	t.Parallel()
	a := startAuthServer(t)
	client := func(token string) *consul.Client {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Scheme, cfg.HttpClient, cfg.Token = strings.TrimPrefix(a.httpsURL, "https://"), "https", a.client, token
		c, err := consul.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reg := &consul.AgentServiceRegistration{ID: "shop-1", Name: "shop", Port: 8080, Check: &consul.AgentServiceCheck{TTL: "1m"}}
	if err := client("dashboards-token").Agent().ServiceRegister(reg); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("register with a read token: %v, want 403", err)
	}
	if err := client("").Agent().ServiceRegister(reg); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("register without a token: %v, want 401", err)
	}
	if err := client("collector-token").Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register with the ingest token: %v", err)
	}
	if err := client("collector-token").Agent().PassTTL("service:shop-1", ""); err != nil {
		t.Fatalf("heartbeat with the ingest token: %v", err)
	}
	for _, tok := range []string{"collector-token", "dashboards-token", "releaser-token"} {
		es, _, err := client(tok).Health().Service("shop", "", true, nil)
		if err != nil || len(es) != 1 {
			t.Errorf("health read with %s: %d entries, %v", tok, len(es), err)
		}
	}
	if _, _, err := client("").Catalog().Services(nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("catalog read without a token: %v, want 401", err)
	}
}

// TestRegistryHTTPCheck: vigil probes an HTTP check and the instance
// passes; a check pointed at the cloud metadata address is refused by the
// notifications' outbound policy and stays critical, saying why.
func TestRegistryHTTPCheck(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := consulClient(t, s)
	for id, url := range map[string]string{"good": s.httpURL + "/-/healthy", "metadata": "http://169.254.169.254/latest/meta-data/"} {
		if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
			ID: id, Name: "shop", Port: 8080, Check: &consul.AgentServiceCheck{HTTP: url, Interval: "1s", Timeout: "1s"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	var checks map[string]*consul.AgentCheck
	waitFor(t, "the HTTP checks to be probed", 20*time.Second, func() bool {
		var err error
		checks, err = c.Agent().Checks()
		return err == nil && checks["service:good"] != nil && checks["service:good"].Status == consul.HealthPassing &&
			checks["service:metadata"] != nil && checks["service:metadata"].Output != ""
	})
	if m := checks["service:metadata"]; m.Status != consul.HealthCritical || !strings.Contains(m.Output, "not allowed") {
		t.Errorf("the metadata check: %s %q, want critical and refused", m.Status, m.Output)
	}
}
