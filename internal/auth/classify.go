package auth

import (
	"net/http"
	"path"
	"strings"

	"github.com/vigil-observability/vigil/internal/ingest/elasticsearch"
)

// Role is what a credential may do. A credential holds any set of roles;
// no role implies another (an operator who silences alerts from the UI
// needs read and admin).
type Role string

// The roles a credential can hold, and Open for the routes that need none.
const (
	// RoleIngest writes telemetry: OTLP (HTTP and gRPC), remote_write and
	// the Elasticsearch and Loki log APIs.
	RoleIngest Role = "ingest"
	// RoleRead reads: every query API, the UI, /metrics.
	RoleRead Role = "read"
	// RoleAdmin changes the server: reload, deletion, silences and
	// alerts through the Alertmanager API, cluster membership, pprof.
	RoleAdmin Role = "admin"
	// RoleConfig writes the configuration centre: any PUT, POST or DELETE
	// under /api/v1/config/. admin may do so too.
	RoleConfig Role = "config"
	// ConfigRead marks the configuration centre's reads (GET under
	// /api/v1/config/), which any credential may make: services read
	// their configuration with the ingest token they ship telemetry with.
	// It is not a role a credential can hold.
	ConfigRead Role = "config-read"
	// RegistryRead marks the service registry's reads (GET of Consul's
	// /v1/agent/, /v1/catalog/ and /v1/health/ and of /api/v1/registry),
	// which any credential may make: Prometheus's consul_sd_configs and
	// services find each other with whatever token they hold. It is not
	// a role a credential can hold.
	RegistryRead Role = "registry-read"
	// Open marks a route served without credentials (health and
	// readiness). It is not a role a credential can hold.
	Open Role = "open"
)

// valid reports whether r may be granted to a credential.
func (r Role) valid() bool {
	return r == RoleIngest || r == RoleRead || r == RoleAdmin || r == RoleConfig
}

// ingestPaths are the only HTTP routes an ingest credential reaches.
var ingestPaths = map[string]bool{
	"/api/v1/write": true, // Prometheus remote_write
	"/v1/traces":    true, // OTLP/HTTP
	"/v1/logs":      true,
	"/v1/metrics":   true,
	// The Loki push API. Its probes (/ready, buildinfo) are GETs, judged
	// below; the rest of /loki/ is the query API, which reads.
	"/loki/api/v1/push": true,
	// Pyroscope's ingest API (profiles).
	"/ingest": true,
}

// ingestPrefixes are subtrees that are ingest whatever the method: the
// Elasticsearch-compatible API under /elasticsearch, whose agents check
// the version (GET /) and set up templates (PUT) with the same credential
// they ship logs with, and which serves nothing else.
var ingestPrefixes = []string{"/elasticsearch"}

// readPOSTPaths are the POST routes that only read: the Prometheus and
// Loki APIs accept their queries as form posts (a long query does not fit
// a URL), and remote read is a POST.
var readPOSTPaths = map[string]bool{
	"/api/v1/query":           true,
	"/api/v1/query_range":     true,
	"/api/v1/query_exemplars": true,
	"/api/v1/series":          true,
	"/api/v1/labels":          true,
	"/api/v1/format_query":    true,
	"/api/v1/parse_query":     true,
	"/api/v1/read":            true,
	// Loki's query API takes its queries as form posts as well.
	"/loki/api/v1/query":              true,
	"/loki/api/v1/query_range":        true,
	"/loki/api/v1/labels":             true,
	"/loki/api/v1/series":             true,
	"/loki/api/v1/index/stats":        true,
	"/loki/api/v1/index/volume":       true,
	"/loki/api/v1/index/volume_range": true,
}

// adminPrefixes are subtrees that are admin whatever the method, so that
// a route added under them later is admin without anyone deciding it:
// pprof and other debug handlers, the Prometheus admin API, and the /-/
// control endpoints (reload, the route listing).
var adminPrefixes = []string{"/debug", "/api/v1/admin", "/-"}

// configPrefix is the configuration centre's subtree.
const configPrefix = "/api/v1/config"

// readIndexPath is where a cluster's leader tells a follower the log
// position a linearizable read must wait for (alerting.InternalReadIndexPath).
// A follower asks it with the credential of the read it serves, which for
// a configuration read may be any credential: the answer is a number, a
// position in the log, and reveals nothing else.
const readIndexPath = "/internal/alerting/read-index"

// registryAgentPrefix is the Consul agent API's subtree, where instances
// register, heartbeat and deregister.
const registryAgentPrefix = "/v1/agent"

// registryPrefixes are the service registry's subtrees (the Consul API
// subset and vigil's own listing).
var registryPrefixes = []string{registryAgentPrefix, "/v1/catalog", "/v1/health", "/api/v1/registry"}

// RegistryPath reports whether p is the service registry's: its requests
// may carry their token as Consul's X-Consul-Token header.
func RegistryPath(p string) bool {
	p = cleanPath(p)
	for _, prefix := range registryPrefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// Classify returns the role a request needs, from its method and path
// alone. It is the single place that decides access for every HTTP route
// vigil serves, on every listener:
//
//   - GET/HEAD /-/healthy, /-/ready and /ready (Loki's) are Open: load
//     balancers, orchestrators and log agents probe them without
//     credentials, and they reveal only that the process is up.
//   - /debug/..., /api/v1/admin/... and the rest of /-/... need admin.
//   - POST to the remote_write, OTLP and Loki push paths needs ingest,
//     and so does any request under /elasticsearch/.
//   - Under /api/v1/config/, the configuration centre: a GET or HEAD is
//     ConfigRead (any credential), any other method needs config (or
//     admin).
//   - GET of the cluster's read index (readIndexPath) is ConfigRead too:
//     a follower asks it for a configuration read it serves.
//   - The service registry: a GET or HEAD under /v1/agent/, /v1/catalog/,
//     /v1/health/ or /api/v1/registry is RegistryRead (any credential);
//     any other method under /v1/agent/ (register, heartbeat, deregister)
//     needs ingest, the token instances ship telemetry with.
//   - POST to the Prometheus and Loki query endpoints needs read.
//   - Any other GET, HEAD or OPTIONS needs read: reading is all a safe
//     method does, and the UI answers every GET path (its client-side
//     routes), so there is no finite list of read routes to check against.
//   - Any other method on any other path needs admin. A new route that
//     changes something is therefore closed to ingest and read credentials
//     until it is listed here on purpose.
func Classify(method, p string) Role {
	p = cleanPath(p)
	safe := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
	if safe && (p == "/-/healthy" || p == "/-/ready" || p == "/ready") {
		return Open
	}
	if adminPath(p) {
		return RoleAdmin
	}
	for _, prefix := range ingestPrefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return RoleIngest
		}
	}
	if p == configPrefix || strings.HasPrefix(p, configPrefix+"/") {
		if safe {
			return ConfigRead
		}
		return RoleConfig
	}
	if safe && p == readIndexPath {
		return ConfigRead
	}
	if RegistryPath(p) {
		if safe {
			return RegistryRead
		}
		if p == registryAgentPrefix || strings.HasPrefix(p, registryAgentPrefix+"/") {
			return RoleIngest
		}
	}
	if safe {
		return RoleRead
	}
	if method == http.MethodPost {
		if ingestPaths[p] {
			return RoleIngest
		}
		if readPOSTPaths[p] {
			return RoleRead
		}
	}
	return RoleAdmin
}

// adminPath reports whether p is under one of adminPrefixes.
func adminPath(p string) bool {
	for _, prefix := range adminPrefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// ClassifyRequest is Classify with the one rule a method and a path
// cannot decide alone: the web listener serves Elasticsearch's API at its
// root beside the UI, and a request elasticsearch.RootRequest claims for
// it (which looks at the Accept header too: a browser's GET / is the UI's)
// needs ingest whatever the method, as under /elasticsearch. The admin
// subtrees stay admin, and routing agrees: the web server never hands
// their paths to the API.
func ClassifyRequest(r *http.Request) Role {
	role := Classify(r.Method, r.URL.Path)
	if role == Open {
		return role
	}
	if p := cleanPath(r.URL.Path); !adminPath(p) && elasticsearch.RootRequest(r.Method, p, r.Header) {
		return RoleIngest
	}
	return role
}

// ReadOnly reports whether a request only reads, from its method and path:
// any GET, HEAD or OPTIONS, and the POST routes that only read (the
// Prometheus API's queries and remote read). A page of an origin trusted
// for CORS may send these, and only these, cross-origin.
func ReadOnly(method, p string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return readPOSTPaths[cleanPath(p)]
	}
	return false
}

// otlpGRPCServices are the gRPC services an ingest credential reaches.
var otlpGRPCServices = map[string]bool{
	"opentelemetry.proto.collector.trace.v1.TraceService":     true,
	"opentelemetry.proto.collector.logs.v1.LogsService":       true,
	"opentelemetry.proto.collector.metrics.v1.MetricsService": true,
}

// ClassifyGRPC returns the role a gRPC call needs from its full method
// name ("/package.Service/Method"): ingest for the OTLP export services,
// admin for anything else registered later (reflection, channelz, ...).
func ClassifyGRPC(fullMethod string) Role {
	svc, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if ok && otlpGRPCServices[svc] {
		return RoleIngest
	}
	return RoleAdmin
}

// cleanPath is the path http.ServeMux routes on, so that "/-/healthy/../reload"
// is judged as the "/-/reload" it reaches.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p)
}
