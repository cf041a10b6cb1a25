// Package config is the schema of vigil.yaml: vigil's own settings plus
// sections in the formats people already have. The Prometheus sections
// (global, scrape_configs, scrape_config_files) are parsed by Prometheus's
// own loader so that they mean exactly what they mean to Prometheus.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/ingest/pipeline"
	"github.com/vigil-observability/vigil/internal/ingest/profilescrape"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/slo"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/web"
)

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole of vigil.yaml. Load returns it with defaults applied
// and validated; command-line flags override single fields afterwards.
type Config struct {
	// HTTPAddr serves the UI, the query APIs, remote_write and vigil's own metrics.
	HTTPAddr     string `yaml:"http_addr"`
	OTLPGRPCAddr string `yaml:"otlp_grpc_addr"`
	OTLPHTTPAddr string `yaml:"otlp_http_addr"`
	// DataDir holds the embedded stores (tsdb/ and spanlogs/).
	DataDir string `yaml:"data_dir"`
	// Dir is the directory of the file this configuration was read from,
	// against which its relative paths were resolved; empty without one.
	// A cluster names rule files relative to it, so that nodes laid out
	// alike under different directories hold the same configuration.
	Dir       string         `yaml:"-"`
	Retention model.Duration `yaml:"retention"`
	// ShutdownTimeout bounds a stop (SIGTERM, Ctrl-C) from the signal to
	// the write queues drained: listeners stop within it even with clients
	// stuck mid-request, so a supervisor's kill never lands first.
	ShutdownTimeout model.Duration `yaml:"shutdown_timeout"`
	Storage         Storage        `yaml:"storage"`
	Limits          Limits         `yaml:"limits"`
	Ingest          Ingest         `yaml:"ingest"`
	// Query bounds what one query may cost; unset bounds are derived from
	// limits.memory_limit.
	Query Query `yaml:"query"`

	// Admin turns on endpoints that change the server (POST /-/reload).
	Admin Admin `yaml:"admin"`
	// Doctor tunes the continuous diagnosis.
	Doctor Doctor `yaml:"doctor"`
	// Registry tunes the service registry (docs/registry.md).
	Registry Registry `yaml:"registry"`
	// Web says which browsers' requests the HTTP listeners accept.
	Web Web `yaml:"web"`

	// WebConfigFile turns on authentication (and TLS, if it says so) for
	// every listener: a web config file in the Prometheus exporter-toolkit
	// format plus vigil's roles; relative to this file. See docs/security.md.
	WebConfigFile string `yaml:"web_config_file"`
	// Auth is the loaded WebConfigFile; nil when authentication is off.
	Auth *auth.Authenticator `yaml:"-"`

	// AlertmanagerConfigFile is an alertmanager.yml, in Alertmanager's own
	// format, for vigil's built-in Alertmanager; relative to this file.
	AlertmanagerConfigFile string `yaml:"alertmanager_config_file"`
	// Alerting tunes the built-in Alertmanager's outbound connections.
	Alerting Alerting `yaml:"alerting"`
	// Cluster, when set, makes this node one of a cluster; without it vigil
	// runs single-node.
	Cluster *Cluster `yaml:"cluster"`
	// SLOs are service level objectives in Sloth's prometheus/v1 format
	// (plus span-based SLIs), turned into recording and alerting rules.
	SLOs yaml.Node `yaml:"slos"`

	// The Prometheus sections, kept raw here and parsed by Prometheus.
	Global            yaml.Node `yaml:"global"`
	ScrapeConfigs     yaml.Node `yaml:"scrape_configs"`
	ScrapeConfigFiles yaml.Node `yaml:"scrape_config_files"`
	RuleFiles         yaml.Node `yaml:"rule_files"`

	// Prometheus is the Prometheus view of the file: global and scrape
	// configuration with Prometheus's defaults, paths relative to the file.
	Prometheus *promconfig.Config `yaml:"-"`

	// ProfileScrapeConfigs are the jobs whose targets' /debug/pprof
	// endpoints vigil pulls profiles from, in the vocabulary of
	// scrape_configs (docs/profiling.md); ProfileScrape is the section
	// decoded, defaults filled in.
	ProfileScrapeConfigs yaml.Node                  `yaml:"profile_scrape_configs"`
	ProfileScrape        []*profilescrape.JobConfig `yaml:"-"`
}

// Admin configures the administrative endpoints, off by default.
type Admin struct {
	// Enabled serves POST /-/reload.
	Enabled bool `yaml:"enabled"`
}

// Alerting tunes the built-in Alertmanager.
type Alerting struct {
	// AllowOutbound lists link-local or cloud metadata addresses (CIDR
	// ranges, or single addresses) that notifications may connect to; every
	// other such address is refused, so that a webhook URL cannot read the
	// instance's metadata credentials. Read at start-up only.
	AllowOutbound []string `yaml:"allow_outbound"`
}

// Registry tunes the service registry.
type Registry struct {
	// Scrape scrapes every registered instance that has a port, with no
	// scrape config, as the implicit job "registry" (each target's job
	// label is its service). Unset means true.
	Scrape *bool `yaml:"scrape"`
}

// ScrapeOn reports whether registered instances are scraped.
func (r Registry) ScrapeOn() bool { return r.Scrape == nil || *r.Scrape }

// Doctor tunes the doctor, which looks for broken seams continuously.
type Doctor struct {
	// Interval between runs of every check (1m by default; at least 10s,
	// since some checks read minutes of spans and logs).
	Interval model.Duration `yaml:"interval"`
}

// Web is how the HTTP listeners (the HTTP address and OTLP/HTTP) treat
// requests from browsers other than vigil's own UI. See docs/security.md.
type Web struct {
	// CORSOrigin is a regular expression, anchored at both ends as
	// Prometheus's --web.cors.origin, of the origins whose pages may read
	// the APIs (e.g. 'https://grafana\.example\.com'). Empty, the
	// default, allows none: unlike Prometheus's ".*", any page a user of
	// an unauthenticated vigil opens could otherwise read its logs and
	// traces.
	CORSOrigin string `yaml:"cors_origin"`
	// AllowedHosts are the host names requests may be addressed to besides
	// localhost, IP addresses, the machine's name and the listen addresses'
	// hosts (".example.com" for a domain and its subdomains, "*" for any).
	// Checked while authentication is off, or whenever this is set.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// BrowserOptions is the web section as the HTTP listeners apply it;
// readOnly tells requests that only read.
func (c *Config) BrowserOptions(readOnly func(method, path string) bool) web.BrowserOptions {
	return web.BrowserOptions{
		CORSOrigin: c.Web.CORSOrigin,
		// The cluster's peers name each other in the Host header of the
		// silence writes they forward.
		AllowedHosts: append(slices.Clone(c.Web.AllowedHosts), c.clusterAPIHosts()...),
		// With authentication on, a page rebound to vigil's address has no
		// credentials to send; the check still runs if names are listed.
		CheckHost: c.Auth == nil || len(c.Web.AllowedHosts) > 0,
		ReadOnly:  readOnly,
	}
}

// DefaultShutdownTimeout is ShutdownTimeout when the file does not set it:
// what vigil always allowed. A supervisor must wait longer than this plus
// the stores' closing (Kubernetes' terminationGracePeriodSeconds is 30 s by
// default, so set shutdown_timeout lower there).
const DefaultShutdownTimeout = 30 * time.Second

// MinShutdownTimeout is the shortest ShutdownTimeout accepted: below it
// requests in flight at a stop would rarely get their answer.
const MinShutdownTimeout = time.Second

// DefaultDoctorInterval is doctor.interval when it is not set.
const DefaultDoctorInterval = time.Minute

// MinDoctorInterval is the shortest Doctor.Interval accepted.
const MinDoctorInterval = 10 * time.Second

// Storage selects and tunes the storage backend.
type Storage struct {
	// Backend is "embedded" (Prometheus TSDB + DuckDB in DataDir) or
	// "clickhouse" (spans, logs and metrics in ClickHouse, shared by any
	// number of vigil processes).
	Backend string `yaml:"backend"`
	// DuckDBMemoryLimit caps DuckDB's buffer memory (DuckDB syntax, e.g. "1GB").
	DuckDBMemoryLimit string `yaml:"duckdb_memory_limit"`
	// ClickHouse says where the clickhouse backend's data lives.
	ClickHouse ClickHouse `yaml:"clickhouse"`
}

// Backends of Storage.Backend.
const (
	BackendEmbedded   = "embedded"
	BackendClickHouse = "clickhouse"
)

// ClickHouse configures the clickhouse backend.
type ClickHouse struct {
	// DSN for the native protocol, as clickhouse-go v2 reads it:
	// clickhouse://user:password@host:9000/db?dial_timeout=5s.
	DSN string `yaml:"dsn"`
	// Database overrides the DSN's database ("vigil" if neither names one).
	Database string `yaml:"database"`
	// Cluster, when set, names a cluster of the server's remote_servers:
	// tables are created on every shard behind Distributed tables.
	Cluster string `yaml:"cluster"`
}

// Limits is the YAML face of limits.Limits.
type Limits struct {
	MaxRequestBytes         units.Base2Bytes `yaml:"max_request_bytes"`
	MaxAttributeValueLength int              `yaml:"max_attribute_value_length"`
	MaxAttributesPerItem    int              `yaml:"max_attributes_per_item"`
	MaxLabelsPerSeries      int              `yaml:"max_labels_per_series"`
	MaxLabelNameLength      int              `yaml:"max_label_name_length"`
	MaxLabelValueLength     int              `yaml:"max_label_value_length"`
	MaxFutureSkew           model.Duration   `yaml:"max_future_skew"`
	// MaxLineBytes bounds one line pushed through the Loki API (0: 256KiB,
	// Loki's max_line_size); a longer line is refused, the rest of its
	// request kept. Lines past max_attribute_value_length are truncated.
	MaxLineBytes units.Base2Bytes `yaml:"max_line_bytes"`
	// MaxLabelsPerStream bounds the labels of a Loki stream and the
	// structured metadata of an entry (0: 30, Loki's default).
	MaxLabelsPerStream int `yaml:"max_labels_per_stream"`
	// MaxStreamsPerTenant and MaxStreamsPerService bound the active Loki
	// streams (label sets that received lines within
	// active_stream_window) of a tenant (X-Scope-OrgID) and of one service
	// in it; lines of new streams past them are refused (stream_limit).
	// 0 means the default (10000 and 5000); -1 means no limit.
	MaxStreamsPerTenant  int `yaml:"max_streams_per_tenant"`
	MaxStreamsPerService int `yaml:"max_streams_per_service"`
	// ActiveStreamWindow is how long a stream counts as active after its
	// last line (0: 1h).
	ActiveStreamWindow model.Duration `yaml:"active_stream_window"`
	// MaxSeries bounds the series the embedded TSDB holds in memory:
	// past it, remote_write and OTLP samples of new series are refused
	// (series_limit) while existing series keep being written. 0 means
	// DefaultMaxSeries; -1 means no limit.
	MaxSeries int `yaml:"max_series"`
	// MemoryLimit is the memory the process should stay under; 0 means
	// no cap. DuckDB's buffer pool takes storage.duckdb_memory_limit out
	// of it (a quarter of it unless set), the Go runtime gets the rest as
	// its soft limit, and ingest is refused as overloaded while the live
	// heap is high.
	MemoryLimit units.Base2Bytes `yaml:"memory_limit"`
}

// DefaultMaxSeries is limits.max_series when unset: about 4 GiB of TSDB
// head at the few kilobytes a series costs.
const DefaultMaxSeries = 1_000_000

// MinMemoryLimit is the smallest limits.memory_limit accepted.
const MinMemoryLimit = 256 << 20

// Query bounds each query, so that no query or burst of them takes the
// process past limits.memory_limit. Every field left 0 is derived from
// limits.memory_limit (Prometheus's defaults without one); see
// querylimit.DefaultsFor and docs/api.md.
type Query struct {
	// Timeout ends a query's evaluation (Prometheus's --query.timeout).
	Timeout model.Duration `yaml:"timeout"`
	// MaxSamples is the most samples one query may hold at once
	// (--query.max-samples); remote read is bounded by it too.
	MaxSamples int `yaml:"max_samples"`
	// MaxSeries is the most series one query or request may select.
	MaxSeries int `yaml:"max_series"`
	// MaxResponseBytes bounds one answer's estimated size.
	MaxResponseBytes units.Base2Bytes `yaml:"max_response_bytes"`
	// MaxConcurrency is how many queries run at once
	// (--query.max-concurrency); more wait up to 5s, then get 503.
	MaxConcurrency int `yaml:"max_concurrency"`
	// MaxTraceSpans is the most spans a trace read by id returns; the
	// answer says when spans were left out.
	MaxTraceSpans int `yaml:"max_trace_spans"`
}

// QueryLimits is the query section with what is unset derived from
// limits.memory_limit.
func (c *Config) QueryLimits() querylimit.Limits {
	q := c.Query
	return querylimit.Limits{
		Timeout:          time.Duration(q.Timeout),
		MaxSamples:       q.MaxSamples,
		MaxSeries:        q.MaxSeries,
		MaxResponseBytes: int64(q.MaxResponseBytes),
		MaxConcurrency:   q.MaxConcurrency,
		MaxTraceSpans:    q.MaxTraceSpans,
	}.Fill(querylimit.DefaultsFor(int64(c.Limits.MemoryLimit)))
}

// Ingest sizes the write path.
type Ingest struct {
	// MaxQueueItems bounds spans (and, separately, log records) waiting to be written.
	MaxQueueItems int `yaml:"max_queue_items"`
	// MaxBatchItems bounds the items merged into one storage write.
	MaxBatchItems int `yaml:"max_batch_items"`
	// MaxRequestsInFlight bounds the requests each receiver (OTLP/gRPC,
	// OTLP/HTTP, remote_write) reads and decodes at once; more are refused
	// with a retryable error before their bodies are read, which bounds memory.
	MaxRequestsInFlight int `yaml:"max_requests_in_flight"`
}

// Defaults returns the configuration used without a file.
func Defaults() *Config {
	return &Config{
		HTTPAddr:        "localhost:7070",
		OTLPGRPCAddr:    "localhost:4317",
		OTLPHTTPAddr:    "localhost:4318",
		DataDir:         "./data",
		Retention:       model.Duration(storage.DefaultRetention),
		ShutdownTimeout: model.Duration(DefaultShutdownTimeout),
		Storage:         Storage{Backend: BackendEmbedded},
		Doctor:          Doctor{Interval: model.Duration(DefaultDoctorInterval)},
		Ingest: Ingest{
			MaxQueueItems:       pipeline.DefaultMaxQueueItems,
			MaxBatchItems:       pipeline.DefaultMaxBatchItems,
			MaxRequestsInFlight: ingest.DefaultMaxRequestsInFlight,
		},
	}
}

// Load reads and validates the file at path; an empty path means defaults.
func Load(path string, logger *slog.Logger) (*Config, error) {
	if path == "" {
		c := Defaults()
		return c, c.finish("", logger)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, filepath.Dir(path), logger)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a vigil.yaml body. dir resolves relative paths in it.
func Parse(data []byte, dir string, logger *slog.Logger) (*Config, error) {
	c := Defaults()
	// data_dir is resolved against the file only when the file sets it;
	// the default stays relative to the working directory.
	defaultDataDir := c.DataDir
	c.DataDir = ""
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// io.EOF: an empty file means all defaults.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	} else if dir != "" && !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(dir, c.DataDir)
	}
	c.Dir = dir
	return c, c.finish(dir, logger)
}

func (c *Config) finish(dir string, logger *slog.Logger) error {
	prom, err := c.loadPrometheus(dir, logger)
	if err != nil {
		return err
	}
	c.Prometheus = prom
	c.defaultScrapeBodySizeLimit()
	if c.ProfileScrape, err = profilescrape.Decode(&c.ProfileScrapeConfigs, dir, prom.GlobalConfig); err != nil {
		return fmt.Errorf("%w: profile_scrape_configs: %w", ErrInvalid, err)
	}
	if _, err := c.RuleFilePaths(); err != nil {
		return err
	}
	if _, err := c.SLOSpecs(); err != nil {
		return err
	}
	if c.WebConfigFile != "" {
		if dir != "" && !filepath.IsAbs(c.WebConfigFile) {
			c.WebConfigFile = filepath.Join(dir, c.WebConfigFile)
		}
		a, err := auth.Load(c.WebConfigFile)
		if err != nil {
			return fmt.Errorf("%w: web_config_file: %w", ErrInvalid, err)
		}
		c.Auth = a
	}
	if c.Storage.DuckDBMemoryLimit == "" {
		c.Storage.DuckDBMemoryLimit = DefaultDuckDBMemoryLimit
		if c.Limits.MemoryLimit > 0 {
			c.Storage.DuckDBMemoryLimit = fmt.Sprintf("%dMiB", c.Limits.MemoryLimit/4>>20)
		}
	}
	return c.Validate()
}

// DefaultDuckDBMemoryLimit is storage.duckdb_memory_limit when neither it
// nor limits.memory_limit is set.
const DefaultDuckDBMemoryLimit = storage.DefaultDuckDBMemoryLimit

// loadPrometheus hands the Prometheus sections to Prometheus's loader, which
// applies its defaults (scrape interval, timeout, ...) and validation.
func (c *Config) loadPrometheus(dir string, logger *slog.Logger) (*promconfig.Config, error) {
	doc := map[string]*yaml.Node{}
	for key, node := range map[string]*yaml.Node{
		"global": &c.Global, "scrape_configs": &c.ScrapeConfigs, "scrape_config_files": &c.ScrapeConfigFiles,
		"rule_files": &c.RuleFiles,
	} {
		if node.Kind != 0 {
			doc[key] = node
		}
	}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	prom, err := promconfig.Load(string(raw), logger)
	if err != nil {
		return nil, fmt.Errorf("%w: prometheus sections: %w", ErrInvalid, err)
	}
	if dir != "" {
		prom.SetDirectory(dir)
		if c.AlertmanagerConfigFile != "" && !filepath.IsAbs(c.AlertmanagerConfigFile) {
			c.AlertmanagerConfigFile = filepath.Join(dir, c.AlertmanagerConfigFile)
		}
	}
	return prom, nil
}

// DefaultScrapeBodySizeLimit is the scrape body limit (Prometheus's
// body_size_limit) when neither global nor a scrape config sets one. It is
// lowered to an eighth of limits.memory_limit when that is smaller.
const DefaultScrapeBodySizeLimit = 64 << 20

// ScrapeBodySizeLimit is the body_size_limit scrapes get when their
// configuration sets none.
func (c *Config) ScrapeBodySizeLimit() units.Base2Bytes {
	l := units.Base2Bytes(DefaultScrapeBodySizeLimit)
	if c.Limits.MemoryLimit > 0 {
		l = min(l, c.Limits.MemoryLimit/8)
	}
	return l
}

// defaultScrapeBodySizeLimit gives scrapes a body limit when their
// configuration sets none: Prometheus has no default, so one target
// answering a never-ending body would be read until the process runs out
// of memory. The global value is what scrape configs without their own
// inherit, those of scrape_config_files too (they are validated against
// it when read); the inline ones were validated already and get it here.
func (c *Config) defaultScrapeBodySizeLimit() {
	g := &c.Prometheus.GlobalConfig
	if g.BodySizeLimit != 0 {
		return
	}
	g.BodySizeLimit = c.ScrapeBodySizeLimit()
	for _, sc := range c.Prometheus.ScrapeConfigs {
		if sc.BodySizeLimit == 0 {
			sc.BodySizeLimit = g.BodySizeLimit
		}
	}
}

// RuleFilePaths expands the rule_files globs, as Prometheus does: a
// pattern that matches nothing is not an error.
func (c *Config) RuleFilePaths() ([]string, error) {
	var out []string
	for _, pat := range c.Prometheus.RuleFiles {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("%w: rule_files %q: %w", ErrInvalid, pat, err)
		}
		out = append(out, m...)
	}
	return out, nil
}

// SLOSpecs decodes and validates the slos: section.
func (c *Config) SLOSpecs() ([]slo.Spec, error) {
	specs, err := slo.Decode(&c.SLOs)
	if err != nil {
		return nil, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
	}
	return specs, nil
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	for name, addr := range map[string]string{
		"http_addr": c.HTTPAddr, "otlp_grpc_addr": c.OTLPGRPCAddr, "otlp_http_addr": c.OTLPHTTPAddr,
	} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrInvalid, name, addr, err)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data_dir is empty", ErrInvalid)
	}
	if time.Duration(c.Retention) < time.Hour {
		return fmt.Errorf("%w: retention %s is shorter than 1h", ErrInvalid, c.Retention)
	}
	switch c.Storage.Backend {
	case BackendEmbedded:
	case BackendClickHouse:
		if c.Storage.ClickHouse.DSN == "" {
			return fmt.Errorf("%w: storage.backend clickhouse needs storage.clickhouse.dsn (e.g. clickhouse://localhost:9000/vigil)", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: storage.backend %q: use \"embedded\" or \"clickhouse\"", ErrInvalid, c.Storage.Backend)
	}
	if d := time.Duration(c.ShutdownTimeout); d < MinShutdownTimeout {
		return fmt.Errorf("%w: shutdown_timeout %s: must be at least %s", ErrInvalid, d, MinShutdownTimeout)
	}
	if d := time.Duration(c.Doctor.Interval); d < MinDoctorInterval {
		return fmt.Errorf("%w: doctor.interval %s: must be at least %s", ErrInvalid, d, MinDoctorInterval)
	}
	for _, a := range c.Alerting.AllowOutbound {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("%w: alerting.allow_outbound %q: want a CIDR range (169.254.10.0/24) or an address", ErrInvalid, a)
			}
		}
	}
	if c.Cluster != nil {
		if err := c.Cluster.validate(); err != nil {
			return err
		}
	}
	if _, err := web.CompileOrigin(c.Web.CORSOrigin); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, h := range c.Web.AllowedHosts {
		if err := web.CheckAllowedHost(h); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if c.Ingest.MaxQueueItems < 0 || c.Ingest.MaxBatchItems < 0 || c.Ingest.MaxRequestsInFlight < 0 {
		return fmt.Errorf("%w: ingest sizes must not be negative", ErrInvalid)
	}
	if q := c.Query; q.Timeout < 0 || q.MaxSamples < 0 || q.MaxSeries < 0 || q.MaxResponseBytes < 0 ||
		q.MaxConcurrency < 0 || q.MaxTraceSpans < 0 {
		return fmt.Errorf("%w: query limits must not be negative", ErrInvalid)
	}
	l := c.Limits
	if l.MaxRequestBytes < 0 || l.MaxAttributeValueLength < 0 || l.MaxAttributesPerItem < 0 ||
		l.MaxLabelsPerSeries < 0 || l.MaxLabelNameLength < 0 || l.MaxLabelValueLength < 0 || l.MaxFutureSkew < 0 ||
		l.MaxSeries < -1 || l.MemoryLimit < 0 || l.MaxLineBytes < 0 || l.MaxLabelsPerStream < 0 ||
		l.MaxStreamsPerTenant < -1 || l.MaxStreamsPerService < -1 || l.ActiveStreamWindow < 0 {
		return fmt.Errorf("%w: limits must not be negative", ErrInvalid)
	}
	if l.MemoryLimit > 0 && l.MemoryLimit < MinMemoryLimit {
		return fmt.Errorf("%w: limits.memory_limit %s is below the minimum of 256MiB", ErrInvalid, l.MemoryLimit)
	}
	if l.MemoryLimit > 0 {
		duck, err := c.DuckDBMemoryBytes()
		if err != nil {
			return err
		}
		if duck >= int64(l.MemoryLimit) {
			return fmt.Errorf("%w: storage.duckdb_memory_limit %s leaves nothing of limits.memory_limit %s for the rest of vigil", ErrInvalid, c.Storage.DuckDBMemoryLimit, l.MemoryLimit)
		}
	}
	return nil
}

// SeriesLimit is limits.max_series with its default filled in; 0 means none.
func (c *Config) SeriesLimit() uint64 {
	switch n := c.Limits.MaxSeries; {
	case n < 0:
		return 0
	case n == 0:
		return DefaultMaxSeries
	default:
		return uint64(n)
	}
}

// StreamLimits are the limits of active Loki streams; a -1 in the file
// (no limit) becomes the negative value limits.StreamLimits reads the same
// way.
func (c *Config) StreamLimits() limits.StreamLimits {
	return limits.StreamLimits{
		MaxPerTenant:  c.Limits.MaxStreamsPerTenant,
		MaxPerService: c.Limits.MaxStreamsPerService,
		Window:        time.Duration(c.Limits.ActiveStreamWindow),
	}.WithDefaults()
}

// DuckDBMemoryBytes is storage.duckdb_memory_limit in bytes. DuckDB reads
// "1GB" as 10^9 bytes; reading it as 2^30 errs on the safe side when the
// figure is subtracted from limits.memory_limit.
func (c *Config) DuckDBMemoryBytes() (int64, error) {
	b, err := units.ParseBase2Bytes(strings.ReplaceAll(c.Storage.DuckDBMemoryLimit, " ", ""))
	if err != nil {
		return 0, fmt.Errorf("%w: storage.duckdb_memory_limit %q: want a size like 512MB or 1GiB", ErrInvalid, c.Storage.DuckDBMemoryLimit)
	}
	return int64(b), nil
}

// IngestLimits returns the limits for the ingest path, defaults filled in.
// Items older than the retention are refused: they would be dropped at once.
func (c *Config) IngestLimits() limits.Limits {
	return limits.Limits{
		MaxRequestBytes:         int64(c.Limits.MaxRequestBytes),
		MaxAttributeValueLength: c.Limits.MaxAttributeValueLength,
		MaxAttributesPerItem:    c.Limits.MaxAttributesPerItem,
		MaxLabelsPerSeries:      c.Limits.MaxLabelsPerSeries,
		MaxLabelNameLength:      c.Limits.MaxLabelNameLength,
		MaxLabelValueLength:     c.Limits.MaxLabelValueLength,
		MaxPastAge:              time.Duration(c.Retention),
		MaxFutureSkew:           time.Duration(c.Limits.MaxFutureSkew),
	}.WithDefaults()
}
