package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/testcert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         Role
	}{
		{"GET", "/-/healthy", Open},
		{"HEAD", "/-/ready", Open},
		{"POST", "/-/healthy", RoleAdmin}, // only probes are open
		{"GET", "/-/healthy/../reload", RoleAdmin},
		{"POST", "/-/reload", RoleAdmin},
		{"GET", "/-/routes", RoleAdmin},
		{"GET", "/-/anything-new", RoleAdmin},
		{"GET", "/debug/pprof/", RoleAdmin},
		{"GET", "/debug/pprof/heap", RoleAdmin},
		{"GET", "/api/v1/admin/tsdb/snapshot", RoleAdmin},
		{"POST", "/api/v1/admin/tsdb/delete_series", RoleAdmin},
		{"POST", "/api/v1/write", RoleIngest},
		{"POST", "/v1/traces", RoleIngest},
		{"POST", "/v1/logs", RoleIngest},
		{"POST", "/v1/metrics", RoleIngest},
		{"PUT", "/api/v1/write", RoleAdmin}, // not a write the receiver accepts
		{"GET", "/elasticsearch/", RoleIngest},
		{"POST", "/elasticsearch/_bulk", RoleIngest},
		{"PUT", "/elasticsearch/_index_template/logs", RoleIngest},
		{"POST", "/elasticsearch-other/_bulk", RoleAdmin},
		{"POST", "/loki/api/v1/push", RoleIngest},
		{"POST", "/ingest", RoleIngest},
		{"GET", "/api/v1/profiles/export", RoleRead},
		{"GET", "/loki/api/v1/push", RoleRead},
		{"DELETE", "/loki/api/v1/push", RoleAdmin},
		{"GET", "/ready", Open},
		{"POST", "/ready", RoleAdmin},
		{"GET", "/loki/api/v1/status/buildinfo", RoleRead},
		{"POST", "/api/v1/query", RoleRead},
		{"POST", "/api/v1/query_range", RoleRead},
		{"POST", "/api/v1/read", RoleRead},
		{"POST", "/loki/api/v1/query_range", RoleRead},
		{"POST", "/loki/api/v1/index/volume", RoleRead},
		{"GET", "/loki/api/v1/label/job/values", RoleRead},
		{"POST", "/loki/api/v1/label/job/values", RoleAdmin}, // only GET reads it
		{"GET", "/api/v1/query", RoleRead},
		{"GET", "/api/v1/status/config", RoleRead},
		{"GET", "/api/traces/abc", RoleRead},
		{"GET", "/api/doctor", RoleRead},
		{"GET", "/metrics", RoleRead},
		{"GET", "/", RoleRead},
		{"GET", "/explore/some/ui/route", RoleRead},
		{"OPTIONS", "/api/v1/query", RoleRead},
		{"GET", "/api/v2/silences", RoleRead},
		{"POST", "/api/v2/silences", RoleAdmin},
		{"DELETE", "/api/v2/silence/123", RoleAdmin},
		{"POST", "/api/v2/alerts", RoleAdmin},
		{"GET", "/api/v1/cluster", RoleRead},
		{"POST", "/api/v1/cluster/members", RoleAdmin}, // vigil cluster join
		{"DELETE", "/api/v1/cluster/members/n3", RoleAdmin},
		{"POST", "/api/some-new-endpoint", RoleAdmin},
		{"DELETE", "/api/traces/abc", RoleAdmin},
		{"POST", "/v1/traces/../../-/reload", RoleAdmin},
		{"POST", "v1/traces", RoleIngest},
		{"GET", "/api/v1/config", ConfigRead},
		{"GET", alerting.InternalReadIndexPath, ConfigRead},
		{"POST", alerting.InternalReadIndexPath, RoleAdmin},
		{"GET", "/api/v1/config/shop/payment/timeout", ConfigRead},
		{"HEAD", "/api/v1/config/shop/payment/timeout/history", ConfigRead},
		{"PUT", "/api/v1/config/shop/payment/timeout", RoleConfig},
		{"POST", "/api/v1/config/shop/payment/timeout/gray", RoleConfig},
		{"POST", "/api/v1/config/shop/payment/timeout/gray/promote", RoleConfig},
		{"DELETE", "/api/v1/config/shop/payment/timeout", RoleConfig},
		{"POST", "/api/v1/config/../admin/tsdb/delete_series", RoleAdmin},
		{"GET", "/api/v1/configx", RoleRead},
		{"PUT", "/v1/agent/service/register", RoleIngest},
		{"PUT", "/v1/agent/check/pass/service:a", RoleIngest},
		{"PUT", "/v1/agent/service/deregister/a", RoleIngest},
		{"GET", "/v1/agent/self", RegistryRead},
		{"GET", "/v1/catalog/services", RegistryRead},
		{"GET", "/v1/health/service/shop", RegistryRead},
		{"GET", "/api/v1/registry", RegistryRead},
		// Incident snapshots: taking one asks instances to profile
		// themselves, so it is admin; the bundles are read.
		{"POST", "/api/v1/snapshots", RoleAdmin},
		{"GET", "/api/v1/snapshots", RoleRead},
		{"GET", "/api/v1/snapshots/20261207T161727Z-gateway-ace14453", RoleRead},
		{"PUT", "/v1/catalog/register", RoleAdmin},
		{"POST", "/v1/agent/../../api/v1/admin/tsdb/snapshot", RoleAdmin},
		{"POST", "/v1/traces", RoleIngest},
		{"GET", "/api/v1/changes", RoleRead},
		{"GET", "/api/v1/cluster/config", RoleRead},
	} {
		if got := Classify(tc.method, tc.path); got != tc.want {
			t.Errorf("Classify(%s %s) = %s, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestAllowedConfig(t *testing.T) {
	for _, tc := range []struct {
		roles []Role
		need  Role
		want  bool
	}{
		{[]Role{RoleConfig}, RoleConfig, true},
		{[]Role{RoleAdmin}, RoleConfig, true},
		{[]Role{RoleRead, RoleIngest}, RoleConfig, false},
		{[]Role{RoleIngest}, ConfigRead, true},
		{[]Role{RoleRead}, ConfigRead, true},
		{[]Role{RoleConfig}, ConfigRead, true},
		{nil, ConfigRead, false},
		{[]Role{RoleIngest}, RegistryRead, true},
		{nil, RegistryRead, false},
		{[]Role{RoleConfig}, RoleRead, false},
		{[]Role{RoleConfig}, RoleAdmin, false},
	} {
		if got := Allowed(tc.roles, tc.need); got != tc.want {
			t.Errorf("Allowed(%v, %s) = %v, want %v", tc.roles, tc.need, got, tc.want)
		}
	}
}

func TestClassifyGRPC(t *testing.T) {
	for m, want := range map[string]Role{
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export":     RoleIngest,
		"/opentelemetry.proto.collector.logs.v1.LogsService/Export":       RoleIngest,
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": RoleIngest,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":       RoleAdmin,
		"/grpc.health.v1.Health/Check":                                    RoleAdmin,
		"":                                                                RoleAdmin,
	} {
		if got := ClassifyGRPC(m); got != want {
			t.Errorf("ClassifyGRPC(%q) = %s, want %s", m, got, want)
		}
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func bcryptHash(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func testAuthenticator(t *testing.T) *Authenticator {
	t.Helper()
	a, err := New(Config{
		BasicAuthUsers: map[string]string{"alice": bcryptHash(t, "s3cret"), "bob": bcryptHash(t, "hunter2")},
		Roles:          map[string][]Role{"alice": {RoleRead, RoleAdmin}, "bob": {RoleRead}},
		BearerTokens: []BearerToken{
			{Name: "collector", SHA256: sha("tok-ingest"), Roles: []Role{RoleIngest}},
			{Name: "grafana", SHA256: strings.ToUpper(sha("tok-read")), Roles: []Role{RoleRead}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticate(t *testing.T) {
	a := testAuthenticator(t)
	for _, tc := range []struct {
		name, header string
		want         []Role // nil: refused
	}{
		{"basic alice", basicHeader("alice", "s3cret"), []Role{RoleRead, RoleAdmin}},
		{"basic alice again (cached)", basicHeader("alice", "s3cret"), []Role{RoleRead, RoleAdmin}},
		{"basic bob", basicHeader("bob", "hunter2"), []Role{RoleRead}},
		{"basic scheme case-insensitive", "basic " + base64.StdEncoding.EncodeToString([]byte("bob:hunter2")), []Role{RoleRead}},
		{"wrong password", basicHeader("alice", "hunter2"), nil},
		{"wrong password after a cached success", basicHeader("alice", "s3cret "), nil},
		{"unknown user", basicHeader("mallory", "s3cret"), nil},
		{"empty password", basicHeader("alice", ""), nil},
		{"not base64", "Basic !!!", nil},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice")), nil},
		{"bearer ingest", "Bearer tok-ingest", []Role{RoleIngest}},
		{"bearer read, hash in upper case", "Bearer tok-read", []Role{RoleRead}},
		{"bearer wrong", "Bearer tok-nope", nil},
		{"bearer empty", "Bearer ", nil},
		{"the hash is not the token", "Bearer " + sha("tok-ingest"), nil},
		{"Elasticsearch API key id:key is a basic user", "ApiKey " + base64.StdEncoding.EncodeToString([]byte("bob:hunter2")), []Role{RoleRead}},
		{"Elasticsearch API key, wrong key", "ApiKey " + base64.StdEncoding.EncodeToString([]byte("bob:hunter3")), nil},
		{"Elasticsearch API key that is a token", "ApiKey tok-ingest", []Role{RoleIngest}},
		{"Elasticsearch API key, unknown", "ApiKey " + base64.StdEncoding.EncodeToString([]byte("tok-ingest")), nil},
		{"no header", "", nil},
		{"unknown scheme", "Digest abc", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Authenticate(tc.header)
			if tc.want == nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("got roles %v, err %v; want ErrUnauthenticated", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	good := bcryptHash(t, "x")
	for _, tc := range []struct{ name, yaml, want string }{
		{"nobody", "vigil_roles: {}\n", "no basic_auth_users and no bearer_tokens"},
		{"empty file", "", "no basic_auth_users and no bearer_tokens"},
		{"user without roles", "basic_auth_users: {alice: '" + good + "'}\n", `user "alice" has no roles`},
		{"unknown role", "basic_auth_users: {alice: '" + good + "'}\nvigil_roles: {alice: [root]}\n", `unknown role "root"`},
		{"plain password", "basic_auth_users: {alice: hunter2}\nvigil_roles: {alice: [read]}\n", "not a bcrypt hash"},
		{"roles for a stranger", "basic_auth_users: {alice: '" + good + "'}\nvigil_roles: {alice: [read], bob: [read]}\n", `"bob", which is not in basic_auth_users`},
		{"short token hash", "bearer_tokens: [{name: c, sha256: abcd, roles: [ingest]}]\n", "64 hex digits"},
		{"token without roles", "bearer_tokens: [{name: c, sha256: " + sha("x") + "}]\n", "bearer_tokens c has no roles"},
		{"unknown key", "basic_auth_user: {}\n", "basic_auth_user"},
		{"tls without files", "tls_server_config: {cert_file: nope.pem, key_file: nope.key}\nbearer_tokens: [{sha256: " + sha("x") + ", roles: [read]}]\n", "tls_server_config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), t.TempDir())
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadTLSRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	certPEM := testcert.Write(t, dir)
	web := filepath.Join(dir, "web.yml")
	body := "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS13\n" +
		"bearer_tokens: [{name: c, sha256: " + sha("tok") + ", roles: [read]}]\n"
	if err := os.WriteFile(web, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Load(web)
	if err != nil {
		t.Fatal(err)
	}
	tc := a.TLSConfig()
	if tc == nil {
		t.Fatal("tls_server_config set but TLSConfig is nil")
	}
	if tc.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", tc.MinVersion)
	}
	// Not httptest's StartTLS: it installs its own certificate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})), TLSConfig: tc}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/api/v1/query", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("TLS request with the configured certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}

	noTLS, err := Parse([]byte("bearer_tokens: [{sha256: "+sha("tok")+", roles: [read]}]\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if noTLS.TLSConfig() != nil {
		t.Error("no tls_server_config but TLSConfig is not nil")
	}
}

func TestWrap(t *testing.T) {
	a := testAuthenticator(t)
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tc := range []struct {
		method, path, header string
		want                 int
	}{
		{"GET", "/-/healthy", "", http.StatusTeapot},
		{"GET", "/-/ready", "", http.StatusTeapot},
		{"GET", "/api/v1/query", "", http.StatusUnauthorized},
		{"GET", "/api/v1/query", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/query", "Bearer tok-ingest", http.StatusForbidden},
		{"GET", "/api/v1/query", "Bearer tok-read", http.StatusTeapot},
		{"POST", "/api/v1/write", "Bearer tok-read", http.StatusForbidden},
		{"POST", "/api/v1/write", "Bearer tok-ingest", http.StatusTeapot},
		{"POST", "/-/reload", basicHeader("bob", "hunter2"), http.StatusForbidden},
		{"POST", "/-/reload", basicHeader("alice", "s3cret"), http.StatusTeapot},
		{"GET", "/debug/pprof/", basicHeader("bob", "hunter2"), http.StatusForbidden},
		{"POST", "/api/v2/silences", basicHeader("alice", "s3cret"), http.StatusTeapot},
		{"GET", "/api/v1/config/a/b/c", "Bearer tok-ingest", http.StatusTeapot},
		{"PUT", "/api/v1/config/a/b/c", "Bearer tok-ingest", http.StatusForbidden},
		{"PUT", "/api/v1/config/a/b/c", basicHeader("bob", "hunter2"), http.StatusForbidden},
		{"PUT", "/api/v1/config/a/b/c", basicHeader("alice", "s3cret"), http.StatusTeapot},
		{"PUT", "/v1/agent/service/register", "Bearer tok-read", http.StatusForbidden},
		{"PUT", "/v1/agent/service/register", "Bearer tok-ingest", http.StatusTeapot},
		{"GET", "/v1/health/service/shop", "Bearer tok-ingest", http.StatusTeapot},
		// Consul's clients send X-Consul-Token, honoured on the registry's paths only.
		{"PUT", "/v1/agent/service/register", "consul tok-ingest", http.StatusTeapot},
		{"GET", "/v1/catalog/services", "consul tok-read", http.StatusTeapot},
		{"GET", "/v1/catalog/services", "consul wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/query", "consul tok-read", http.StatusUnauthorized},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tok, ok := strings.CutPrefix(tc.header, "consul "); ok {
			req.Header.Set("X-Consul-Token", tok)
		} else if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (%q): %d, want %d", tc.method, tc.path, tc.header, rec.Code, tc.want)
		}
		if rec.Code == http.StatusUnauthorized && !strings.Contains(strings.Join(rec.Header().Values("WWW-Authenticate"), ","), "Basic") {
			t.Errorf("%s %s: 401 without a Basic challenge: %v", tc.method, tc.path, rec.Header())
		}
	}
	var nilAuth *Authenticator
	rec := httptest.NewRecorder()
	nilAuth.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })).
		ServeHTTP(rec, httptest.NewRequest("POST", "/-/reload", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("auth off: %d, want the handler's answer", rec.Code)
	}
}

func TestWrapNamesThePrincipal(t *testing.T) {
	a := testAuthenticator(t)
	var got string
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = Principal(r.Context()) }))
	for header, want := range map[string]string{
		basicHeader("alice", "s3cret"): "alice",
		"Bearer tok-ingest":            "token:collector",
		"ApiKey " + base64.StdEncoding.EncodeToString([]byte("bob:hunter2")): "bob",
		"": "", // an open route
	} {
		got = "unset"
		path := "/api/v1/config/a/b/c"
		if header == "" {
			path = "/-/healthy"
		}
		req := httptest.NewRequest("GET", path, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if got != want {
			t.Errorf("%q: principal %q, want %q", header, got, want)
		}
	}
}

func TestAuthorizeGRPC(t *testing.T) {
	a := testAuthenticator(t)
	const export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	for _, tc := range []struct {
		method, header string
		want           codes.Code
	}{
		{export, "", codes.Unauthenticated},
		{export, "Bearer wrong", codes.Unauthenticated},
		{export, "Bearer tok-read", codes.PermissionDenied},
		{export, "Bearer tok-ingest", codes.OK},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "Bearer tok-ingest", codes.PermissionDenied},
	} {
		ctx := context.Background()
		if tc.header != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tc.header))
		}
		if got := status.Code(a.authorizeGRPC(ctx, tc.method)); got != tc.want {
			t.Errorf("%s (%q): %v, want %v", tc.method, tc.header, got, tc.want)
		}
	}
	if len(a.GRPCOptions()) != 3 {
		t.Errorf("without TLS: %d options, want the tap handle and the two interceptors", len(a.GRPCOptions()))
	}
}

// A reload replaces users, tokens and roles in the running Authenticator
// (the listeners hold it): the old password and token stop working at once,
// even the cached password, and the new ones work.
func TestUpdateReplacesCredentials(t *testing.T) {
	a := testAuthenticator(t)
	if _, err := a.Authenticate(basicHeader("alice", "s3cret")); err != nil {
		t.Fatalf("before: %v", err) // also puts the password in the cache
	}
	next, err := New(Config{
		BasicAuthUsers: map[string]string{"alice": bcryptHash(t, "rotated")},
		Roles:          map[string][]Role{"alice": {RoleRead, RoleAdmin}},
		BearerTokens:   []BearerToken{{Name: "new", SHA256: sha("new-token"), Roles: []Role{RoleIngest}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CheckUpdate(next); err != nil {
		t.Fatalf("CheckUpdate: %v", err)
	}
	if err := a.Update(next); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(basicHeader("alice", "s3cret")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("old password after the update: %v, want refused", err)
	}
	if roles, err := a.Authenticate(basicHeader("alice", "rotated")); err != nil || !slices.Contains(roles, RoleAdmin) {
		t.Errorf("new password: %v %v, want read and admin", roles, err)
	}
	if _, err := a.Authenticate("Bearer tok-ingest"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removed token: %v, want refused", err)
	}
	if roles, err := a.Authenticate("Bearer new-token"); err != nil || !slices.Equal(roles, []Role{RoleIngest}) {
		t.Errorf("new token: %v %v", roles, err)
	}

	// What running listeners cannot change is refused, and nothing changes.
	withTLS := Config{BasicAuthUsers: map[string]string{"bob": bcryptHash(t, "x")}, Roles: map[string][]Role{"bob": {RoleRead}}}
	withTLS.TLSServerConfig.TLSCertPath, withTLS.TLSServerConfig.TLSKeyPath = "tls.crt", "tls.key"
	tlsNext := &Authenticator{tlsSrc: withTLS.TLSServerConfig}
	tlsNext.creds.Store(&credentialSet{})
	var none *Authenticator
	for name, tc := range map[string]struct{ a, next *Authenticator }{
		"auth turned off": {a, nil},
		"auth turned on":  {none, next},
		"TLS changed":     {a, tlsNext},
	} {
		if err := tc.a.Update(tc.next); !errors.Is(err, ErrRestartNeeded) {
			t.Errorf("%s: %v, want ErrRestartNeeded", name, err)
		}
	}
	if _, err := a.Authenticate(basicHeader("alice", "rotated")); err != nil {
		t.Errorf("a refused update changed the credentials: %v", err)
	}
	if err := none.Update(nil); err != nil {
		t.Errorf("no auth before or after: %v", err)
	}
}
