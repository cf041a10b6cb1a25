package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/testcert"
	"github.com/vigil-observability/vigil/internal/testport"
)

// authCred is one credential of the test's web config.
type authCred struct {
	name   string
	header string
	roles  []auth.Role
}

func (c authCred) has(r auth.Role) bool { return auth.Allowed(c.roles, r) }

// authServer is a vigil started with a web config: TLS on every listener,
// basic users and bearer tokens, one credential per role.
type authServer struct {
	cmd *exec.Cmd
	// dir holds the web config and tls.crt, the server's self-signed
	// certificate.
	dir                         string
	httpsURL, otlpURL, grpcAddr string
	client                      *http.Client
	pool                        *x509.CertPool
	creds                       []authCred
	logs                        *syncBuffer
}

func (a *authServer) cred(name string) authCred {
	for _, c := range a.creds {
		if c.name == name {
			return c
		}
	}
	panic("no credential " + name)
}

// extraConfig is appended to the server's vigil.yaml.
func startAuthServer(t *testing.T, extraConfig ...string) *authServer {
	t.Helper()
	dir := t.TempDir()
	certPEM := testcert.Write(t, dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	hash := func(pass string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	sum := func(tok string) string {
		s := sha256.Sum256([]byte(tok))
		return hex.EncodeToString(s[:])
	}
	webYML := fmt.Sprintf(`tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
basic_auth_users:
  reader: %q
  operator: %q
vigil_roles:
  reader: [read]
  operator: [admin]
bearer_tokens:
  - name: collector
    sha256: %s
    roles: [ingest]
  - name: dashboards
    sha256: %s
    roles: [read]
  - name: releaser
    sha256: %s
    roles: [config]
`, hash("reader-pass"), hash("operator-pass"), sum("collector-token"), sum("dashboards-token"), sum("releaser-token"))
	if err := os.WriteFile(filepath.Join(dir, "web.yml"), []byte(webYML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte("web_config_file: web.yml\nadmin:\n  enabled: true\n"+strings.Join(extraConfig, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	h, oh, g := testport.Addr(t), testport.Addr(t), testport.Addr(t)
	cmd := exec.Command(vigilBin, "server", "--config", filepath.Join(dir, "vigil.yaml"), "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", h, "--otlp-http-addr", oh, "--otlp-grpc-addr", g)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited closes when the process ends; waitErr is set before.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("vigil output:\n%s", logs.String())
		}
	})
	basic := func(u, p string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	a := &authServer{
		cmd: cmd, dir: dir, httpsURL: "https://" + h, otlpURL: "https://" + oh, grpcAddr: g, pool: pool, logs: logs,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		creds: []authCred{
			{"reader", basic("reader", "reader-pass"), []auth.Role{auth.RoleRead}},
			{"operator", basic("operator", "operator-pass"), []auth.Role{auth.RoleAdmin}},
			{"collector", "Bearer collector-token", []auth.Role{auth.RoleIngest}},
			{"dashboards", "Bearer dashboards-token", []auth.Role{auth.RoleRead}},
			{"releaser", "Bearer releaser-token", []auth.Role{auth.RoleConfig}},
		},
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-exited:
			t.Fatalf("vigil exited during start-up: %v\n%s", waitErr, logs.String())
		default:
		}
		// /-/ready needs no credentials: that is what load balancers probe.
		resp, err := a.client.Get(a.httpsURL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil not ready within 2m\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends one request with the Authorization header given ("" for none)
// and returns the status.
func (a *authServer) do(t *testing.T, method, url, authorization, contentType string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// routeRequests turns a mounted ServeMux pattern into concrete requests:
// wildcards get a value, and a pattern without a method is tried with the
// methods that mean different things (read, write, delete).
func routeRequests(pattern string) (method []string, path string) {
	m, p, ok := strings.Cut(pattern, " ")
	if !ok {
		m, p = "", pattern
	}
	p = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(p, "x")
	switch p {
	case "/debug/pprof/profile", "/debug/pprof/trace":
		p += "?seconds=1" // not the default 30 s
	}
	if m != "" {
		return []string{m}, p
	}
	return []string{http.MethodGet, http.MethodPost, http.MethodDelete}, p
}

// TestAuthEveryRoute enumerates every route the running server mounted and
// checks each one: 401 without credentials (except the health probes), 403
// with a credential lacking the role, neither with the role. A route added
// later is in the listing, so it cannot slip through unchecked.
func TestAuthEveryRoute(t *testing.T) {
	a := startAuthServer(t)
	operator := a.cred("operator")

	if code := a.do(t, "GET", a.httpsURL+"/-/routes", "", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /-/routes without credentials: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", a.httpsURL+"/-/routes", nil)
	req.Header.Set("Authorization", operator.header)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var listing struct{ Data []string }
	err = json.NewDecoder(resp.Body).Decode(&listing)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /-/routes as admin: %d, %v", resp.StatusCode, err)
	}
	// The listing must hold what this test knows is mounted, or it proves
	// nothing about the rest.
	for _, want := range []string{"GET /-/healthy", "GET /-/ready", "POST /-/reload", "GET /debug/pprof/", "POST /api/v1/write", "/api/v1/", "/api/v2/", "/api/doctor", "/api/traces/{traceID}", "/api/logs", "GET /metrics", "/"} {
		if !slices.Contains(listing.Data, want) {
			t.Errorf("route listing lacks %q: %v", want, listing.Data)
		}
	}
	// Explicit classes for the routes that matter most, so a change to
	// the classification shows here and not only in what it decides.
	for _, c := range []struct {
		method, path string
		want         auth.Role
	}{
		{"GET", "/-/healthy", auth.Open}, {"GET", "/-/ready", auth.Open},
		{"POST", "/api/v1/write", auth.RoleIngest}, {"GET", "/api/v1/query", auth.RoleRead},
		{"POST", "/api/v1/query", auth.RoleRead}, {"GET", "/", auth.RoleRead},
		{"POST", "/-/reload", auth.RoleAdmin}, {"GET", "/debug/pprof/", auth.RoleAdmin},
		{"POST", "/api/v2/silences", auth.RoleAdmin}, {"DELETE", "/api/v2/silence/x", auth.RoleAdmin},
		{"GET", "/api/v2/silences", auth.RoleRead},
	} {
		if got := auth.Classify(c.method, c.path); got != c.want {
			t.Errorf("%s %s is %s, want %s", c.method, c.path, got, c.want)
		}
	}

	checked := 0
	for _, pattern := range listing.Data {
		methods, path := routeRequests(pattern)
		for _, method := range methods {
			// As a.do sends it: no Accept header, so "/" is Elasticsearch's
			// (an agent's), not the UI's.
			probe, _ := http.NewRequest(method, path, nil)
			need := auth.ClassifyRequest(probe)
			what := fmt.Sprintf("%s %s (pattern %q, needs %s)", method, path, pattern, need)
			noAuth := a.do(t, method, a.httpsURL+path, "", "", nil)
			if need == auth.Open {
				if noAuth == http.StatusUnauthorized || noAuth == http.StatusForbidden {
					t.Errorf("%s: %d without credentials, want it open", what, noAuth)
				}
				continue
			}
			checked++
			if noAuth != http.StatusUnauthorized {
				t.Errorf("%s: %d without credentials, want 401", what, noAuth)
			}
			// Past a few wrong passwords from this address, the answer is
			// 429 without a password check (the failed-login budget).
			if code := a.do(t, method, a.httpsURL+path, "Basic cmVhZGVyOndyb25n", "", nil); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
				t.Errorf("%s: %d with a wrong password, want 401 (or 429 once rate-limited)", what, code)
			}
			for _, c := range a.creds {
				code := a.do(t, method, a.httpsURL+path, c.header, "", nil)
				switch {
				case c.has(need) && (code == http.StatusUnauthorized || code == http.StatusForbidden):
					t.Errorf("%s as %s (%v): %d, want access", what, c.name, c.roles, code)
				case !c.has(need) && code != http.StatusForbidden:
					t.Errorf("%s as %s (%v): %d, want 403", what, c.name, c.roles, code)
				}
			}
		}
	}
	t.Logf("%d routes listed, %d route/method pairs checked with %d credentials", len(listing.Data), checked, len(a.creds))
	if checked < 20 {
		t.Errorf("only %d route/method pairs checked: the listing looks incomplete", checked)
	}

	// Plain HTTP is not served on a TLS listener.
	if resp, err := http.Get("http://" + strings.TrimPrefix(a.httpsURL, "https://") + "/-/healthy"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
}

func TestAuthIngestPaths(t *testing.T) {
	a := startAuthServer(t)
	reader, collector, operator := a.cred("reader"), a.cred("collector"), a.cred("operator")

	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("authed")
	span.SetTraceID([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	span.SetSpanID([8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	now := time.Now()
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	otlpBody, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("otlp http", func(t *testing.T) {
		for _, c := range []struct {
			name, header string
			want         int
		}{
			{"none", "", http.StatusUnauthorized},
			{"reader", reader.header, http.StatusForbidden},
			{"operator", operator.header, http.StatusForbidden},
			{"collector", collector.header, http.StatusOK},
		} {
			if got := a.do(t, "POST", a.otlpURL+"/v1/traces", c.header, "application/x-protobuf", otlpBody); got != c.want {
				t.Errorf("OTLP/HTTP as %s: %d, want %d", c.name, got, c.want)
			}
		}
	})

	t.Run("remote_write", func(t *testing.T) {
		wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "auth_e2e"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}},
		}}}
		raw, err := wr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body := snappy.Encode(nil, raw)
		for _, c := range []struct {
			name, header string
			ok           bool
		}{
			{"none", "", false}, {"reader", reader.header, false}, {"operator", operator.header, false},
			{"collector", collector.header, true},
		} {
			got := a.do(t, "POST", a.httpsURL+"/api/v1/write", c.header, "application/x-protobuf", body)
			if c.ok && got/100 != 2 {
				t.Errorf("remote_write as %s: %d, want 2xx", c.name, got)
			}
			if !c.ok && got != http.StatusUnauthorized && got != http.StatusForbidden {
				t.Errorf("remote_write as %s: %d, want 401 or 403", c.name, got)
			}
		}
	})

	t.Run("otlp grpc", func(t *testing.T) {
		conn, err := grpc.NewClient(a.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: a.pool})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := ptraceotlp.NewGRPCClient(conn)
		for _, c := range []struct {
			name, header string
			want         codes.Code
		}{
			{"none", "", codes.Unauthenticated},
			{"wrong token", "Bearer nope", codes.Unauthenticated},
			{"reader", reader.header, codes.PermissionDenied},
			{"dashboards token", a.cred("dashboards").header, codes.PermissionDenied},
			{"collector", collector.header, codes.OK},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if c.header != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.header)
			}
			_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
			cancel()
			if got := status.Code(err); got != c.want {
				t.Errorf("OTLP/gRPC as %s: %v (%v), want %v", c.name, got, err, c.want)
			}
		}
		// Plain text is not served: the listener speaks TLS only.
		plain, err := grpc.NewClient(a.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", collector.header), 10*time.Second)
		defer cancel()
		if _, err := ptraceotlp.NewGRPCClient(plain).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err == nil {
			t.Error("OTLP/gRPC in plain text was accepted on the TLS listener")
		}
	})
}

func TestAuthConfigWithoutUsersRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yml"), []byte("vigil_roles: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("web_config_file: web.yml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runVigil(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	if code == 0 || !strings.Contains(stderr, "no basic_auth_users and no bearer_tokens") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming the missing users and tokens", code, stderr)
	}
}

// `vigil doctor` reaches a server with auth and TLS on, given a read
// credential and the CA; without one it says what the server answered.
func TestDoctorWithCredentials(t *testing.T) {
	a := startAuthServer(t)
	ca := filepath.Join(a.dir, "tls.crt")
	write := func(name, content string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token, pass := write("token", "dashboards-token\n"), write("pass", "reader-pass")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout for 0, stderr for 2
	}{
		{"bearer token", []string{"--bearer-token-file", token}, 0, ""},
		{"basic auth", []string{"--basic-auth-user", "reader", "--basic-auth-password-file", pass}, 0, ""},
		{"no credentials", nil, 2, "HTTP 401"},
		{"an ingest token", []string{"--bearer-token-file", write("ingest", "collector-token")}, 2, "HTTP 403"},
		{"both kinds", []string{"--bearer-token-file", token, "--basic-auth-user", "reader", "--basic-auth-password-file", pass}, 2, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"doctor", "--server", a.httpsURL, "--ca-file", ca, "--format", "json"}, tc.args...)
			stdout, stderr, code := runVigil(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if tc.code == 0 && !strings.Contains(stdout, `"findings"`) {
				t.Errorf("no report: %s", stdout)
			}
			if tc.code == 2 && !strings.Contains(stderr, tc.out) {
				t.Errorf("stderr %q lacks %q", stderr, tc.out)
			}
		})
	}
}

// TestDemoUnderAuth sends the demo shop's telemetry to a server with TLS
// and authentication on, configured the standard OpenTelemetry way
// (OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_CERTIFICATE): any
// service using vigil's SDK or an official OpenTelemetry SDK reaches a
// protected vigil without code changes.
func TestDemoUnderAuth(t *testing.T) {
	a := startAuthServer(t)
	startDemoAt(t, "https://"+a.grpcAddr, []string{
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20collector-token",
		"OTEL_EXPORTER_OTLP_CERTIFICATE=" + filepath.Join(a.dir, "tls.crt"),
	}, testport.Run(t, 4))
	dashboards := a.cred("dashboards")
	waitFor(t, "the demo's traces through TLS and a bearer token", time.Minute, func() bool {
		req, _ := http.NewRequest(http.MethodGet, a.httpsURL+"/api/services", nil)
		req.Header.Set("Authorization", dashboards.header)
		resp, err := a.client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var got struct{ Data []string }
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&got) == nil &&
			slices.Contains(got.Data, "gateway") && slices.Contains(got.Data, "payments")
	})
}

// TestAuthReloadOnSIGHUP rotates a bearer token in the web config file and
// sends SIGHUP: the new token works and the old one is refused, without a
// restart. A change that running listeners cannot take (TLS off) is
// refused as a whole and the running credentials stay.
func TestAuthReloadOnSIGHUP(t *testing.T) {
	a := startAuthServer(t)
	web := filepath.Join(a.dir, "web.yml")
	orig, err := os.ReadFile(web)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(tok string) string {
		s := sha256.Sum256([]byte(tok))
		return hex.EncodeToString(s[:])
	}
	rotated := strings.Replace(string(orig), sum("dashboards-token"), sum("rotated-token"), 1)
	if rotated == string(orig) {
		t.Fatal("the dashboards token is not in web.yml")
	}
	status := func(authorization string) int {
		return a.do(t, http.MethodGet, a.httpsURL+"/api/services", authorization, "", nil)
	}
	if code := status("Bearer rotated-token"); code != http.StatusUnauthorized {
		t.Fatalf("rotated token before the reload: %d, want 401", code)
	}
	if err := os.WriteFile(web, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotated token to be accepted", 30*time.Second, func() bool {
		return status("Bearer rotated-token") == http.StatusOK
	})
	if code := status("Bearer dashboards-token"); code != http.StatusUnauthorized {
		t.Errorf("old token after the reload: %d, want 401", code)
	}

	// Without tls_server_config the listeners would have to change.
	noTLS := strings.Replace(rotated, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n", "", 1)
	noTLS = strings.Replace(noTLS, sum("rotated-token"), sum("third-token"), 1)
	if err := os.WriteFile(web, []byte(noTLS), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload to be logged", 30*time.Second, func() bool {
		return strings.Contains(a.logs.String(), "needs a restart")
	})
	if code := status("Bearer rotated-token"); code != http.StatusOK {
		t.Errorf("running token after a refused reload: %d, want 200", code)
	}
	if code := status("Bearer third-token"); code != http.StatusUnauthorized {
		t.Errorf("token of a refused reload: %d, want 401", code)
	}
}
