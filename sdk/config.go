package vigil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/vigil-observability/vigil/sdk/configcentre"
)

// ConfigCentre connects Service.Config to vigil's configuration centre.
// Every field is optional but URL.
type ConfigCentre struct {
	// URL is vigil's API, e.g. "http://vigil:7070"; empty means
	// VIGIL_URL. Without either, Service.Config fails.
	URL string
	// Instance is this instance's id, for grays by instance list or
	// percentage; empty means the resource's service.instance.id, then the
	// host name (a pod's name on Kubernetes).
	Instance string
	// Labels are sent beside the resource's attributes (service.name,
	// service.version and the rest but process.* and telemetry.*), which
	// grays by labels match; these win.
	Labels map[string]string
	// BearerToken authenticates the reads; empty means VIGIL_BEARER_TOKEN,
	// then the bearer token of OTEL_EXPORTER_OTLP_HEADERS' Authorization
	// (the ingest token the service ships telemetry with).
	BearerToken string
	// CacheDir keeps the last good value of each item, one file per item;
	// empty means VIGIL_CONFIG_CACHE_DIR, then
	// <user cache dir>/vigil/config/<service>. "-" keeps none.
	CacheDir string
	// Options passes the remaining knobs (Wait, StartTimeout, backoff,
	// HTTPClient) to configcentre.New; its URL, Instance, Labels,
	// BearerToken, CacheDir, Logger, Registerer and OnApply are set from
	// the above.
	Options configcentre.Options
}

// ErrNoConfigCentre is returned by Service.Config when no URL is set.
var ErrNoConfigCentre = errors.New("vigil: no configuration centre: set Config.ConfigCentre.URL or VIGIL_URL")

// configState is the service's configuration centre client, made at the
// first Service.Config.
type configState struct {
	mu     sync.Mutex
	client *configcentre.Client
	// applied holds the span attributes naming the applied versions.
	applied atomic.Pointer[[]attribute.KeyValue]
	// grayLog holds the same as log attributes while the instance applies
	// a gray version of some item, and nil otherwise.
	grayLog  atomic.Pointer[[]slog.Attr]
	versions map[string]configcentre.Snapshot // under mu
}

// Config returns the watched value of the configuration centre's item
// namespace/group/key for this instance: Get, Decode and OnChange on it,
// or configcentre.Of[T] for a typed view. The first call for an item
// fetches it (or starts from the disk cache when vigil cannot be reached);
// a goroutine per item then keeps it current until Shutdown. The applied
// versions are reported as vigil_config_applied_info on Registry and
// stamped on every span started afterwards (vigil.config.versions,
// vigil.config.cohort), and on every log record while the instance is in
// a gray cohort.
func (s *Service) Config(namespace, group, key string) (*configcentre.Value, error) {
	c, err := s.configClient()
	if err != nil {
		return nil, err
	}
	return c.Watch(namespace, group, key)
}

func (s *Service) configClient() (*configcentre.Client, error) {
	st := &s.config
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.client != nil {
		return st.client, nil
	}
	cc := s.cfg.ConfigCentre
	opts := cc.Options
	opts.URL = firstNonEmpty(cc.URL, s.cfg.getenv("VIGIL_URL"))
	if opts.URL == "" {
		return nil, ErrNoConfigCentre
	}
	opts.Labels = map[string]string{}
	for _, kv := range s.resource.Attributes() {
		k := string(kv.Key)
		if strings.HasPrefix(k, "process.") || strings.HasPrefix(k, "telemetry.") {
			continue
		}
		opts.Labels[k] = kv.Value.String()
	}
	for k, v := range cc.Labels {
		opts.Labels[k] = v
	}
	opts.Instance = cc.Instance
	if opts.Instance == "" {
		if v, ok := s.resource.Set().Value(semconv.ServiceInstanceIDKey); ok {
			opts.Instance = v.String()
		} else if h, err := os.Hostname(); err == nil {
			opts.Instance = h
		}
	}
	opts.BearerToken = firstNonEmpty(cc.BearerToken, s.cfg.getenv("VIGIL_BEARER_TOKEN"), otlpBearerToken(s.cfg.getenv("OTEL_EXPORTER_OTLP_HEADERS")))
	opts.CacheDir = firstNonEmpty(cc.CacheDir, s.cfg.getenv("VIGIL_CONFIG_CACHE_DIR"))
	switch opts.CacheDir {
	case "-":
		opts.CacheDir = ""
	case "":
		if dir, err := os.UserCacheDir(); err == nil {
			opts.CacheDir = filepath.Join(dir, "vigil", "config", s.Name)
		} else {
			s.Logger.Warn("vigil config: no cache directory; the last values are not kept on disk", "error", err.Error())
		}
	}
	opts.Logger = s.Logger
	opts.Registerer = s.Registry
	opts.OnApply = st.onApply
	c, err := configcentre.New(opts)
	if err != nil {
		return nil, fmt.Errorf("vigil: %w", err)
	}
	s.TracerProvider.RegisterSpanProcessor(configSpanProcessor{st: st})
	st.client = c
	return c, nil
}

// onApply recomputes the span attributes; it runs only when a value
// changes, so OnStart reads a ready slice.
func (st *configState) onApply(item string, snap configcentre.Snapshot) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.versions == nil {
		st.versions = map[string]configcentre.Snapshot{}
	}
	st.versions[item] = snap
	items := make([]string, 0, len(st.versions))
	cohort := "formal"
	for it, v := range st.versions {
		items = append(items, it+"="+strconv.FormatUint(v.Version, 10))
		if v.Gray {
			cohort = "gray"
		}
	}
	sort.Strings(items)
	attrs := []attribute.KeyValue{
		attribute.StringSlice("vigil.config.versions", items),
		attribute.String("vigil.config.cohort", cohort),
	}
	st.applied.Store(&attrs)
	if cohort == "gray" {
		logAttrs := []slog.Attr{slog.Any("vigil.config.versions", items), slog.String("vigil.config.cohort", cohort)}
		st.grayLog.Store(&logAttrs)
	} else {
		st.grayLog.Store(nil)
	}
}

// configLogHandler adds the applied configuration versions to every record
// while the instance is in a gray cohort, so that the logs of gray
// instances can be told apart from the rest (the log resource is fixed at
// start; the versions change at run time). Formal instances' records are
// left as they are: every instance of a service on the formal version is
// the common case, and saying so on every line would only cost bytes.
type configLogHandler struct {
	slog.Handler
	st *configState
}

func (h configLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := h.st.grayLog.Load(); attrs != nil {
		r = r.Clone()
		r.AddAttrs(*attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h configLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return configLogHandler{h.Handler.WithAttrs(as), h.st}
}

func (h configLogHandler) WithGroup(name string) slog.Handler {
	return configLogHandler{h.Handler.WithGroup(name), h.st}
}

// closeConfig stops the watches, if any were started.
func (s *Service) closeConfig() {
	s.config.mu.Lock()
	c := s.config.client
	s.config.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// configSpanProcessor stamps the applied configuration versions on every
// span at its start, so that a gray cohort's traces can be told apart.
type configSpanProcessor struct{ st *configState }

func (p configSpanProcessor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	if attrs := p.st.applied.Load(); attrs != nil {
		s.SetAttributes(*attrs...)
	}
}
func (configSpanProcessor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (configSpanProcessor) Shutdown(context.Context) error   { return nil }
func (configSpanProcessor) ForceFlush(context.Context) error { return nil }

// otlpBearerToken finds "Authorization=Bearer <token>" in the value of
// OTEL_EXPORTER_OTLP_HEADERS (comma-separated key=value, URL-encoded).
func otlpBearerToken(headers string) string {
	for _, kv := range strings.Split(headers, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "authorization") {
			continue
		}
		if dv, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
			v = dv
		}
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
