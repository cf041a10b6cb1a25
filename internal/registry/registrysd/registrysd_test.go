package registrysd

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func TestGroup(t *testing.T) {
	g := Group([]registry.Entry{
		{Instance: registry.Instance{ID: "shop-1", Service: "shop", Address: "10.0.0.7", Port: 8080, Tags: []string{"web", "eu"},
			Meta: map[string]string{"version": "1.4.2", "zone": "eu-1", "metrics_path": "/internal/metrics", "build.id": "x"}}, Health: registry.Passing},
		{Instance: registry.Instance{ID: "no-port", Service: "shop", Address: "10.0.0.8"}},
		{Instance: registry.Instance{ID: "v6", Service: "cart", Address: "::1", Port: 9090, Meta: map[string]string{"metrics_scheme": "https"}}, Health: registry.Critical},
	})
	want := []model.LabelSet{
		{"__address__": "10.0.0.7:8080", "job": "shop", "instance": "shop-1", "service": "shop", "version": "1.4.2",
			"__metrics_path__": "/internal/metrics", "__meta_registry_service": "shop", "__meta_registry_instance_id": "shop-1",
			"__meta_registry_health": "passing", "__meta_registry_tags": ",eu,web,",
			"__meta_registry_metadata_version": "1.4.2", "__meta_registry_metadata_zone": "eu-1",
			"__meta_registry_metadata_metrics_path": "/internal/metrics", "__meta_registry_metadata_build_id": "x"},
		{"__address__": "[::1]:9090", "job": "cart", "instance": "v6", "service": "cart", "__scheme__": "https",
			"__meta_registry_service": "cart", "__meta_registry_instance_id": "v6", "__meta_registry_health": "critical",
			"__meta_registry_metadata_metrics_scheme": "https"},
	}
	if len(g.Targets) != len(want) {
		t.Fatalf("targets %v", g.Targets)
	}
	for i := range want {
		if !g.Targets[i].Equal(want[i]) {
			t.Errorf("target %d:\n got %v\nwant %v", i, g.Targets[i], want[i])
		}
	}
}

// TestRegistered tells the registry's targets from those of any other
// discovery, a static target or a Consul one with the same labels.
func TestRegistered(t *testing.T) {
	g := Group([]registry.Entry{{Instance: registry.Instance{ID: "shop-1", Service: "shop", Address: "10.0.0.7", Port: 8080}}})
	cfg := &config.ScrapeConfig{JobName: JobName}
	for _, tc := range []struct {
		name string
		ls   model.LabelSet
		want bool
	}{
		{"the registry's", g.Targets[0], true},
		{"static", model.LabelSet{"__address__": "10.0.0.7:8080", "job": "shop", "instance": "shop-1"}, false},
		{"consul", model.LabelSet{"__address__": "10.0.0.7:8080", "__meta_consul_service_id": "shop-1", "__meta_consul_service": "shop"}, false},
	} {
		tg := promscrape.NewTarget(labels.FromStrings("job", "shop"), cfg, tc.ls, nil)
		if got := Registered(tg); got != tc.want {
			t.Errorf("%s: Registered %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestZeroConfigScrape: with the implicit job and no scrape_configs, an
// instance that registers is scraped as job=<service>,
// instance=<its id>, with its version; one that deregisters leaves the
// targets and its series go stale.
func TestZeroConfigScrape(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "shop_orders_total 7\n")
	}))
	defer target.Close()
	host, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	p, _ := strconv.Atoi(port)

	reg := registry.New(registry.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte("global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := scrape.New(scrape.Options{Appendable: db, DiscoveryUpdateInterval: 100 * time.Millisecond,
		ImplicitJobs: []scrape.ImplicitJob{{Name: JobName, Discovery: &Config{Registry: reg}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run() }()
	t.Cleanup(func() {
		m.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	if err := reg.Register(registry.Instance{ID: "shop-1", Service: "shop", Address: host, Port: p,
		Meta: map[string]string{"version": "1.4.2"}}); err != nil {
		t.Fatal(err)
	}
	want := labels.FromStrings("__name__", "shop_orders_total", "instance", "shop-1", "job", "shop", "service", "shop", "version", "1.4.2")
	waitFor(t, "the registered instance's series", func() bool {
		v, ok := latest(t, db, want)
		return ok && v == 7
	})
	if got := m.TargetsActive()[JobName]; len(got) != 1 {
		t.Fatalf("active targets %v", got)
	}

	// A reload keeps the job; a configuration naming "registry" itself
	// replaces it (not tested here: the same code path as any job).
	if err := m.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}

	if err := reg.Deregister("shop-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the target to leave", func() bool { return len(m.TargetsActive()[JobName]) == 0 })
	waitFor(t, "the series to go stale", func() bool {
		v, ok := latest(t, db, want)
		return ok && math.IsNaN(v)
	})
}

// latest returns the newest sample of the series with exactly ls.
func latest(t *testing.T, db *tsdb.DB, ls labels.Labels) (float64, bool) {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ms []*labels.Matcher
	ls.Range(func(l labels.Label) { ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value)) })
	ss := q.Select(t.Context(), false, nil, ms...)
	v, found := 0.0, false
	for ss.Next() {
		if labels.Equal(ss.At().Labels(), ls) {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				_, v = it.At()
				found = true
			}
		}
	}
	return v, found
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
