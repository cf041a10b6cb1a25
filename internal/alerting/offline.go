package alerting

import (
	"fmt"
	"slices"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/common/model"
)

// Routes is the routing tree of an alertmanager.yml, read without starting
// an Alertmanager: where alerts would go, for checks that run before (or
// without) a server, such as `vigil doctor --offline`. Its methods answer
// as (*Alertmanager).Route and MatcherLabels do for the running
// configuration. A Routes is immutable and safe for concurrent use.
type Routes struct {
	conf *config.Config
}

// LoadRoutes reads the alertmanager.yml at path as ApplyConfig would, and
// nothing else: no state is read or written and no receiver is built.
func LoadRoutes(path string) (*Routes, error) {
	conf, err := config.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", path, err)
	}
	return &Routes{conf: conf}, nil
}

// ParseRoutes reads an alertmanager.yml body, for configurations that
// exist only in memory (vigil's default one).
func ParseRoutes(data []byte) (*Routes, error) {
	conf, err := config.Load(string(data))
	if err != nil {
		return nil, fmt.Errorf("alerting: parse alertmanager config: %w", err)
	}
	return &Routes{conf: conf}, nil
}

// Route returns where an alert with these labels would go, as the
// dispatcher would route it.
func (r *Routes) Route(ls model.LabelSet) []Delivery {
	return routeIn(r.conf, ls)
}

// MatcherLabels returns the label names the routes below the root match on.
func (r *Routes) MatcherLabels() []string {
	return matcherLabelsIn(r.conf)
}

// routeIn routes ls through conf's tree.
func routeIn(conf *config.Config, ls model.LabelSet) []Delivery {
	if conf == nil || conf.Route == nil {
		return nil
	}
	root := dispatch.NewRoute(conf.Route, nil)
	var out []Delivery
	for _, r := range root.Match(ls) {
		name := r.RouteOpts.Receiver
		out = append(out, Delivery{Receiver: name, Integrations: integrations(conf, name), Default: r == root})
	}
	return out
}

// matcherLabelsIn lists, sorted, the label names conf's routes below the
// root match on.
func matcherLabelsIn(conf *config.Config) []string {
	if conf == nil || conf.Route == nil {
		return nil
	}
	seen := map[string]bool{}
	var walk func(rs []*config.Route)
	walk = func(rs []*config.Route) {
		for _, r := range rs {
			for _, m := range r.Matchers {
				seen[m.Name] = true
			}
			for k := range r.Match {
				seen[k] = true
			}
			for k := range r.MatchRE {
				seen[k] = true
			}
			walk(r.Routes)
		}
	}
	walk(conf.Route.Routes)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
