package vigil

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/vigil-observability/vigil/sdk/registry"
)

// Registration registers the instance with vigil's service registry while
// it serves. It is off unless URL is set or Enabled is true.
type Registration struct {
	// URL is vigil's web listener, e.g. "http://vigil:7070".
	URL string
	// Enabled turns registration on with the URL of ConfigCentre.URL,
	// else VIGIL_URL, when URL is empty.
	Enabled bool
	// ID is the instance id; empty means ConfigCentre.Instance, then the
	// resource's service.instance.id, then "<service>@<host>:<port>".
	ID string
	// Address and Port are where the instance is reached. Empty Address
	// lets vigil take the address the registration came from; zero Port
	// takes the port of the first server Run or Serve serves.
	Address string
	Port    int
	Tags    []string
	// Meta is added to the instance's metadata, which always holds
	// "version" (ServiceVersion) when it is set.
	Meta map[string]string
	// TTL is the heartbeat check's TTL (default 15s; a heartbeat every
	// TTL/3); DeregisterAfter how long vigil keeps a critical instance
	// (default 1m).
	TTL, DeregisterAfter time.Duration
	// BearerToken authenticates the registration (it needs the ingest
	// role); empty means the configuration centre's token resolution:
	// VIGIL_BEARER_TOKEN, then OTEL_EXPORTER_OTLP_HEADERS' Authorization.
	BearerToken string
	// Options passes the remaining knobs (backoff, HTTPClient, Interval)
	// to registry.New; the fields above and Service, Version, Health and
	// Logger are set from Config and the Service.
	Options registry.Options
}

func (r Registration) on() bool { return r.URL != "" || r.Enabled }

// registrationState is the running registration, if any.
type registrationState struct {
	mu     sync.Mutex
	client *registry.Client
}

// Register starts registering this instance with vigil's registry, at
// port (0 takes Registration.Port), with a TTL heartbeat carrying the
// health of Health's checks: passing when they all pass, warning when
// only non-critical ones fail, critical when a critical one fails. Run and
// Serve call it once serving when Config.Registration is on; call it
// yourself when serving otherwise. It returns at once (the registration
// retries in the background while vigil cannot be reached) and does
// nothing when registration is off or already started. Shutdown
// deregisters.
func (s *Service) Register(port int) error {
	rc := s.cfg.Registration
	if !rc.on() {
		return nil
	}
	st := &s.registration
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.client != nil {
		return nil
	}
	opts := rc.Options
	opts.URL = firstNonEmpty(rc.URL, s.cfg.ConfigCentre.URL, s.cfg.getenv("VIGIL_URL"))
	if opts.URL == "" {
		return fmt.Errorf("vigil: registration: no URL: set Config.Registration.URL or VIGIL_URL")
	}
	opts.Service = s.Name
	opts.Version = s.cfg.ServiceVersion
	opts.Address = rc.Address
	opts.Port = rc.Port
	if opts.Port == 0 {
		opts.Port = port
	}
	opts.ID = firstNonEmpty(rc.ID, s.cfg.ConfigCentre.Instance)
	if opts.ID == "" {
		if v, ok := s.resource.Set().Value(semconv.ServiceInstanceIDKey); ok {
			opts.ID = v.AsString()
		} else {
			host, _ := os.Hostname()
			opts.ID = s.Name + "@" + net.JoinHostPort(firstNonEmpty(rc.Address, host), fmt.Sprint(opts.Port))
		}
	}
	opts.Tags = rc.Tags
	opts.Meta = rc.Meta
	opts.TTL = rc.TTL
	opts.DeregisterAfter = rc.DeregisterAfter
	opts.BearerToken = firstNonEmpty(rc.BearerToken, s.cfg.ConfigCentre.BearerToken, s.cfg.getenv("VIGIL_BEARER_TOKEN"), otlpBearerToken(s.cfg.getenv("OTEL_EXPORTER_OTLP_HEADERS")))
	opts.Health = registry.HealthOf(s.Health)
	opts.Logger = s.Logger
	c, err := registry.New(opts)
	if err != nil {
		return fmt.Errorf("vigil: %w", err)
	}
	c.Start()
	st.client = c
	return nil
}

// closeRegistration deregisters, if a registration was started.
func (s *Service) closeRegistration(ctx context.Context) {
	s.registration.mu.Lock()
	c := s.registration.client
	s.registration.mu.Unlock()
	if c == nil {
		return
	}
	// Bounded on its own: Run calls this once its context has ended.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := c.Close(dctx); err != nil {
		s.Logger.Warn("vigil registry: deregistering", "error", err.Error())
	}
}
