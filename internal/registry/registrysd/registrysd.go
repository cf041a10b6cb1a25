// Package registrysd discovers scrape targets from vigil's in-process
// service registry, as a Prometheus discovery mechanism, so that vigil
// scrapes every registered instance with no scrape config
// (docs/registry.md, "Scraping registered instances").
package registrysd

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/vigil-observability/vigil/internal/registry"
)

// JobName is the scrape pool of the registry's targets. Each target's
// job label is its service's name.
const JobName = "registry"

// Meta labels on each target, for relabelling (they are dropped before
// the scrape, as every __meta_ label is).
const (
	metaPrefix     = model.MetaLabelPrefix + "registry_"
	metaService    = metaPrefix + "service"
	metaID         = metaPrefix + "instance_id"
	metaHealth     = metaPrefix + "health"
	metaTags       = metaPrefix + "tags"
	metaMetaPrefix = metaPrefix + "metadata_"
)

// Meta keys an instance can register to change how it is scraped.
const (
	MetaMetricsPath = "metrics_path"
	MetaScheme      = "metrics_scheme"
)

// Config is the discovery mechanism's configuration: the registry to read.
// Two Configs over the same registry are equal, so a reload keeps the
// running discoverer.
type Config struct {
	Registry *registry.Registry
}

var _ discovery.Config = (*Config)(nil)

// Name is the mechanism's name.
func (*Config) Name() string { return "vigil_registry" }

// NewDiscoverer returns the registry's discoverer.
func (c *Config) NewDiscoverer(opts discovery.DiscovererOptions) (discovery.Discoverer, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Discoverer{reg: c.Registry, logger: logger}, nil
}

// NewDiscovererMetrics returns no metrics: the registry has its own.
func (*Config) NewDiscovererMetrics(prometheus.Registerer, discovery.RefreshMetricsInstantiator) discovery.DiscovererMetrics {
	return &discovery.NoopDiscovererMetrics{}
}

// Discoverer sends the registry's instances as one target group at every
// change of the registry (a join, a leave, a change of health).
type Discoverer struct {
	reg    *registry.Registry
	logger *slog.Logger
}

// Run sends target groups until ctx ends.
func (d *Discoverer) Run(ctx context.Context, up chan<- []*targetgroup.Group) {
	for {
		_, changed := d.reg.Watch()
		entries, _ := d.reg.Entries("")
		select {
		case up <- []*targetgroup.Group{Group(entries)}:
		case <-ctx.Done():
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// Group is the target group of entries: every instance with a port, its
// address host:port, and the labels job (its service), instance (its
// registry id), service and version (its "version" metadata, when set),
// plus __meta_registry_service, _instance_id, _health, _tags
// (",a,b,", as Consul's) and _metadata_<key> for relabelling. Metadata
// metrics_path and metrics_scheme set the scrape's path and scheme.
func Group(entries []registry.Entry) *targetgroup.Group {
	g := &targetgroup.Group{Source: JobName, Targets: make([]model.LabelSet, 0, len(entries))}
	for _, e := range entries {
		if e.Port <= 0 || e.Address == "" {
			continue
		}
		ls := model.LabelSet{
			model.AddressLabel:           model.LabelValue(net.JoinHostPort(e.Address, strconv.Itoa(e.Port))),
			model.JobLabel:               model.LabelValue(e.Service),
			model.InstanceLabel:          model.LabelValue(e.ID),
			"service":                    model.LabelValue(e.Service),
			model.LabelName(metaService): model.LabelValue(e.Service),
			model.LabelName(metaID):      model.LabelValue(e.ID),
			model.LabelName(metaHealth):  model.LabelValue(e.Health),
		}
		if v := e.Version(); v != "" {
			ls["version"] = model.LabelValue(v)
		}
		if len(e.Tags) > 0 {
			tags := append([]string(nil), e.Tags...)
			sort.Strings(tags)
			ls[model.LabelName(metaTags)] = model.LabelValue("," + strings.Join(tags, ",") + ",")
		}
		for k, v := range e.Meta {
			ls[model.LabelName(metaMetaPrefix+strutil.SanitizeLabelName(k))] = model.LabelValue(v)
		}
		if p := e.Meta[MetaMetricsPath]; strings.HasPrefix(p, "/") {
			ls[model.MetricsPathLabel] = model.LabelValue(p)
		}
		if s := e.Meta[MetaScheme]; s == "http" || s == "https" {
			ls[model.SchemeLabel] = model.LabelValue(s)
		}
		g.Targets = append(g.Targets, ls)
	}
	return g
}

// Registered reports whether the scrape target t is one of the registry's
// instances (Group made its target). In a cluster on a shared store the
// node an instance registered with is the only one that knows it, so that
// node writes its samples, not the leader (scrape.Options.Own).
func Registered(t *promscrape.Target) bool {
	return t.DiscoveredLabels(labels.NewBuilder(labels.EmptyLabels())).Has(metaID)
}
