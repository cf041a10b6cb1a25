package profilescrape

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv2 "go.yaml.in/yaml/v2"
	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Defaults of a job.
const (
	// DefaultScrapeInterval is Alloy's pyroscope.scrape default (Parca's
	// is 10 s): a CPU profile of most of it, every target, is cheap.
	DefaultScrapeInterval = 15 * time.Second
	// cpuMargin is what a CPU profile's default seconds leave of the
	// scrape timeout for the answer to arrive.
	cpuMargin = 3 * time.Second
)

// Profile kinds a job takes, in the order a target's scrape fetches them:
// the instant ones first, so that they are taken at the scrape's time,
// and the CPU profile, which lasts, last.
var kinds = []string{storage.ProfileMemory, storage.ProfileGoroutine, storage.ProfileMutex, storage.ProfileBlock, storage.ProfileCPU}

// defaultPaths are net/http/pprof's paths. allocs and heap hold the same
// four sample types; allocs is the one meant for allocations.
var defaultPaths = map[string]string{
	storage.ProfileCPU:       "/debug/pprof/profile",
	storage.ProfileMemory:    "/debug/pprof/allocs",
	storage.ProfileGoroutine: "/debug/pprof/goroutine",
	storage.ProfileMutex:     "/debug/pprof/mutex",
	storage.ProfileBlock:     "/debug/pprof/block",
}

// JobConfig is one job of profile_scrape_configs: its targets and HTTP
// settings in the vocabulary of Prometheus's scrape_configs, and the
// profiles it takes.
type JobConfig struct {
	JobName        string         `yaml:"job_name"`
	ScrapeInterval model.Duration `yaml:"scrape_interval,omitempty"`
	ScrapeTimeout  model.Duration `yaml:"scrape_timeout,omitempty"`
	Scheme         string         `yaml:"scheme,omitempty"`
	// Profiles by kind; a kind not listed keeps its defaults (enabled,
	// net/http/pprof's path).
	Profiles map[string]*ProfileConfig `yaml:"profiles,omitempty"`

	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:",inline"`
	// ServiceDiscoveryConfigs are every *_sd_configs and static_configs,
	// inlined as in a Prometheus scrape config.
	ServiceDiscoveryConfigs discovery.Configs `yaml:"-"`
	RelabelConfigs          []*relabel.Config `yaml:"relabel_configs,omitempty"`

	// scrape is the job as a Prometheus scrape config, for the target
	// labels (relabelling, instance, __param_*) Prometheus computes.
	scrape *promconfig.ScrapeConfig
}

// ProfileConfig says whether and where a kind of profile is taken.
type ProfileConfig struct {
	// Enabled: unset means on.
	Enabled *bool  `yaml:"enabled,omitempty"`
	Path    string `yaml:"path,omitempty"`
	// Seconds is the CPU profile's duration (its ?seconds=); 0 means the
	// scrape timeout less 3 s, at least 1 s. Only for cpu.
	Seconds int `yaml:"seconds,omitempty"`
}

// UnmarshalYAML reads a job as Prometheus reads a scrape config, service
// discovery sections inlined.
func (c *JobConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = JobConfig{Scheme: "http", HTTPClientConfig: commoncfg.DefaultHTTPClientConfig}
	// Unlike a metrics scrape, redirects are not followed unless the job
	// says so: vigil connects only to the targets the section finds, not
	// wherever one of them points.
	c.HTTPClientConfig.FollowRedirects = false
	if err := discovery.UnmarshalYAMLWithInlineConfigs(c, unmarshal); err != nil {
		return err
	}
	if c.JobName == "" {
		return errors.New("job_name is empty")
	}
	return nil
}

// Decode reads the profile_scrape_configs section: defaults filled in,
// relative paths resolved against dir, every job checked. global is the
// Prometheus global section, whose name validation and limits the
// targets' labels follow; its scrape interval does not apply.
func Decode(node *yaml.Node, dir string, global promconfig.GlobalConfig) ([]*JobConfig, error) {
	if node == nil || node.Kind == 0 {
		return nil, nil
	}
	// Prometheus's discovery configs unmarshal with yaml.v2; the node is
	// handed over as text.
	raw, err := yaml.Marshal(node)
	if err != nil {
		return nil, err
	}
	var jobs []*JobConfig
	if err := yamlv2.UnmarshalStrict(raw, &jobs); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, j := range jobs {
		if j == nil {
			return nil, fmt.Errorf("job %d is empty", i+1)
		}
		if seen[j.JobName] {
			return nil, fmt.Errorf("two jobs are named %q", j.JobName)
		}
		seen[j.JobName] = true
		if dir != "" {
			j.ServiceDiscoveryConfigs.SetDirectory(dir)
			j.HTTPClientConfig.SetDirectory(dir)
		}
		if err := j.validate(global); err != nil {
			return nil, fmt.Errorf("job %q: %w", j.JobName, err)
		}
	}
	return jobs, nil
}

func (c *JobConfig) validate(global promconfig.GlobalConfig) error {
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = model.Duration(DefaultScrapeInterval)
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = c.ScrapeInterval
	}
	interval, timeout := time.Duration(c.ScrapeInterval), time.Duration(c.ScrapeTimeout)
	if timeout > interval {
		return fmt.Errorf("scrape_timeout %s is longer than scrape_interval %s", c.ScrapeTimeout, c.ScrapeInterval)
	}
	if c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("scheme %q: use http or https", c.Scheme)
	}
	if err := c.HTTPClientConfig.Validate(); err != nil {
		return err
	}
	for k := range c.Profiles {
		if !slices.Contains(kinds, k) {
			return fmt.Errorf("profiles: unknown kind %q; the kinds are %s", k, strings.Join(slices.Sorted(slices.Values(kinds)), ", "))
		}
	}
	if c.Profiles == nil {
		c.Profiles = map[string]*ProfileConfig{}
	}
	for _, k := range kinds {
		p := c.Profiles[k]
		if p == nil {
			p = &ProfileConfig{}
			c.Profiles[k] = p
		}
		if p.Enabled == nil {
			on := true
			p.Enabled = &on
		}
		if p.Path == "" {
			p.Path = defaultPaths[k]
		}
		if !strings.HasPrefix(p.Path, "/") {
			return fmt.Errorf("profiles: %s: path %q must start with /", k, p.Path)
		}
		if k != storage.ProfileCPU {
			if p.Seconds != 0 {
				return fmt.Errorf("profiles: %s: seconds is only for cpu", k)
			}
			continue
		}
		switch {
		case p.Seconds < 0:
			return fmt.Errorf("profiles: cpu: seconds %d is negative", p.Seconds)
		case p.Seconds == 0 && *p.Enabled:
			p.Seconds = int(max(timeout-cpuMargin, time.Second) / time.Second)
		}
		if *p.Enabled && time.Duration(p.Seconds)*time.Second >= timeout {
			return fmt.Errorf("profiles: cpu: seconds %d is not shorter than scrape_timeout %s (the profile takes that long to answer; raise the interval or lower seconds)", p.Seconds, c.ScrapeTimeout)
		}
	}
	if !slices.ContainsFunc(kinds, func(k string) bool { return *c.Profiles[k].Enabled }) {
		return errors.New("profiles: every kind is disabled")
	}

	// The targets' labels are Prometheus's: build the scrape config
	// Prometheus would, and let it check the relabelling and fill the
	// rest from the global section.
	sc := promconfig.DefaultScrapeConfig
	sc.JobName = c.JobName
	sc.ScrapeInterval, sc.ScrapeTimeout = c.ScrapeInterval, c.ScrapeTimeout
	sc.Scheme = c.Scheme
	sc.MetricsPath = "/"
	sc.HTTPClientConfig = c.HTTPClientConfig
	sc.ServiceDiscoveryConfigs = c.ServiceDiscoveryConfigs
	sc.RelabelConfigs = c.RelabelConfigs
	for _, r := range c.RelabelConfigs {
		if r == nil {
			return errors.New("relabel_configs: an empty rule")
		}
	}
	if err := sc.Validate(global); err != nil {
		return err
	}
	c.scrape = &sc
	return nil
}

// enabled are the kinds the job takes, in scrape order.
func (c *JobConfig) enabled() []string {
	var out []string
	for _, k := range kinds {
		if p := c.Profiles[k]; p != nil && p.Enabled != nil && *p.Enabled {
			out = append(out, k)
		}
	}
	return out
}

// equal reports whether two jobs scrape alike. Not by their YAML: it
// shows secrets as <secret>, and a changed password must apply.
func (c *JobConfig) equal(o *JobConfig) bool { return reflect.DeepEqual(c, o) }

// Kinds are the profile kinds a job may take, sorted.
func Kinds() []string { return slices.Sorted(maps.Keys(defaultPaths)) }
