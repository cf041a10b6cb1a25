// Package metricmeta keeps the type, help and unit of metric families for
// /api/v1/metadata: what remote_write senders declare (Prometheus sends its
// targets' metadata in remote_write 1.0 requests), what the OTLP translator
// derives from each metric's description, unit and type, and vigil's own
// derived series (span and log metrics). Scraped targets' metadata stays
// in the scrape manager, as in Prometheus.
//
// The store lives in memory and is rebuilt after a restart rather than
// persisted: every source repeats itself (Prometheus resends all metadata
// every metadata_config.send_interval, 1m by default; OTLP carries it with
// every export; vigil's own families are registered at start), so a file
// would only bridge a gap of one send interval, at the price of a format
// to keep and a write path to make crash-safe.
package metricmeta

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
)

// Defaults of Options.
const (
	// DefaultMaxFamilies bounds the families kept; at a few hundred bytes
	// each that is about 10 MB at most. A real Prometheus with a few
	// hundred targets sends under 2,000.
	DefaultMaxFamilies = 20000
	// DefaultMaxPerFamily bounds the distinct (type, help, unit) kept per
	// family, as targets exporting one name can disagree on its help.
	DefaultMaxPerFamily = 4
	// MaxHelpBytes truncates help texts.
	MaxHelpBytes = 1024
	// MaxNameBytes is the longest family name kept.
	MaxNameBytes = 1024
)

// Options configures a Store.
type Options struct {
	MaxFamilies  int // DefaultMaxFamilies if 0
	MaxPerFamily int // DefaultMaxPerFamily if 0
	// Registerer receives vigil_metric_metadata_families and
	// vigil_metric_metadata_dropped_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Store holds metric family metadata. It is safe for concurrent use.
type Store struct {
	opts Options

	mu   sync.RWMutex
	fams map[string][]metadata.Metadata // variants, oldest first

	dropped prometheus.Counter
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.MaxFamilies <= 0 {
		opts.MaxFamilies = DefaultMaxFamilies
	}
	if opts.MaxPerFamily <= 0 {
		opts.MaxPerFamily = DefaultMaxPerFamily
	}
	s := &Store{
		opts: opts,
		fams: map[string][]metadata.Metadata{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_metric_metadata_dropped_total",
			Help: "Metric family metadata not kept for /api/v1/metadata because the store was full.",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.dropped, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_metric_metadata_families",
			Help: "Metric families with metadata kept for /api/v1/metadata.",
		}, func() float64 { return float64(s.Len()) }))
	}
	return s
}

// Set records a family's metadata. A variant already known costs a read
// lock; a new one replaces the family's oldest once MaxPerFamily are kept.
// Empty metadata (no type, help nor unit) says nothing and is ignored, as
// is everything for a new family once MaxFamilies are kept.
func (s *Store) Set(family string, md metadata.Metadata) {
	if family == "" || len(family) > MaxNameBytes || (md.Type == "" && md.Help == "" && md.Unit == "") {
		return
	}
	md.Help = truncate(md.Help, MaxHelpBytes)
	md.Unit = truncate(md.Unit, MaxNameBytes)
	s.mu.RLock()
	known := slices.Contains(s.fams[family], md)
	s.mu.RUnlock()
	if known {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, ok := s.fams[family]
	switch {
	case slices.Contains(vs, md):
		return
	case !ok && len(s.fams) >= s.opts.MaxFamilies:
		s.dropped.Inc()
		return
	case len(vs) >= s.opts.MaxPerFamily:
		vs = slices.Delete(vs, 0, 1)
	}
	// Callers' strings may alias buffers they reuse (AppenderV2's options
	// do): keep copies.
	md = metadata.Metadata{Type: md.Type, Help: strings.Clone(md.Help), Unit: strings.Clone(md.Unit)}
	if !ok {
		family = strings.Clone(family)
	}
	s.fams[family] = append(vs, md)
}

// SetAll records every family of m.
func (s *Store) SetAll(m map[string]metadata.Metadata) {
	for name, md := range m {
		s.Set(name, md)
	}
}

// Get returns the variants of one family (nil if unknown).
func (s *Store) Get(family string) []metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.fams[family])
}

// All returns every family's variants.
func (s *Store) All() map[string][]metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]metadata.Metadata, len(s.fams))
	for name, vs := range s.fams {
		out[name] = slices.Clone(vs)
	}
	return out
}

// Len is the number of families kept.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.fams)
}

func truncate(v string, n int) string {
	if len(v) <= n {
		return v
	}
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}
