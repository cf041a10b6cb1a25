package snapshot

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/vigil-observability/vigil/internal/registry"
)

type targetsFunc func() map[string][]*promscrape.Target

func (f targetsFunc) TargetsActive() map[string][]*promscrape.Target { return f() }

func target(ls ...string) *promscrape.Target {
	return promscrape.NewTarget(labels.FromStrings(append([]string{"__scheme__", "http", "__metrics_path__", "/metrics"}, ls...)...), &config.ScrapeConfig{}, nil, nil)
}

func TestFindInstances(t *testing.T) {
	targets := targetsFunc(func() map[string][]*promscrape.Target {
		return map[string][]*promscrape.Target{
			"shop": {
				target("__address__", "10.0.0.1:8081", "instance", "10.0.0.1:8081", "job", "shop", "service", "gateway"),
				target("__address__", "10.0.0.2:8081", "instance", "10.0.0.2:8081", "job", "shop", "service", "gateway"),
				target("__address__", "10.0.0.3:8082", "instance", "10.0.0.3:8082", "job", "shop", "service", "catalog"),
			},
			// A job named after its service.
			"payments": {target("__address__", "10.0.0.4:9000", "instance", "10.0.0.4:9000", "job", "payments")},
		}
	})
	reg := registry.New(registry.Options{})
	for _, in := range []registry.Instance{
		{ID: "gateway-a", Service: "gateway", Address: "10.1.0.1", Port: 8081},
		{ID: "gateway-b", Service: "gateway", Address: "10.1.0.2", Port: 8081, Meta: map[string]string{DiagURLMeta: "http://10.1.0.2:6060/debug/snapshot"}},
		{ID: "gateway-down", Service: "gateway", Address: "10.1.0.3", Port: 8081,
			Checks: []registry.CheckSpec{{Type: registry.TTL, TTL: 60e9, Status: registry.Critical}}},
	} {
		if err := reg.Register(in); err != nil {
			t.Fatal(err)
		}
	}
	urls := func(ins []Instance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.Source+" "+in.ID+" "+in.URL)
		}
		return out
	}
	tests := []struct {
		name    string
		reg     Registry
		service string
		want    []string
	}{
		{"registry first, critical left out, metadata URL", reg, "gateway", []string{
			"registry gateway-a http://10.1.0.1:8081/debug/snapshot",
			"registry gateway-b http://10.1.0.2:6060/debug/snapshot",
		}},
		{"not registered: the targets labelled with it", reg, "catalog", []string{"scrape 10.0.0.3:8082 http://10.0.0.3:8082/debug/snapshot"}},
		{"no registry", nil, "gateway", []string{
			"scrape 10.0.0.1:8081 http://10.0.0.1:8081/debug/snapshot",
			"scrape 10.0.0.2:8081 http://10.0.0.2:8081/debug/snapshot",
		}},
		{"a job named after the service", nil, "payments", []string{"scrape 10.0.0.4:9000 http://10.0.0.4:9000/debug/snapshot"}},
		{"a service label outranks the job", nil, "shop", nil},
		{"unknown", reg, "nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := urls(findInstances(tt.reg, targets, tt.service)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
