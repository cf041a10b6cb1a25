package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/testcert"
)

func TestExternalURL(t *testing.T) {
	named := func() (string, error) { return "vigil-1", nil }
	unnamed := func() (string, error) { return "", errors.New("no name") }
	for _, tc := range []struct {
		scheme, addr string
		hostname     func() (string, error)
		want         string
	}{
		{"http", "localhost:7070", named, "http://localhost:7070"},
		{"https", "vigil.example.com:443", named, "https://vigil.example.com:443"},
		{"http", "10.1.2.3:7070", named, "http://10.1.2.3:7070"},
		{"http", "[::1]:7070", named, "http://[::1]:7070"},
		// Listening on every interface: the machine's name, with the
		// port vigil listens on (never Prometheus's 9090).
		{"http", ":7070", named, "http://vigil-1:7070"},
		{"http", "0.0.0.0:7070", named, "http://vigil-1:7070"},
		{"http", "[::]:7070", named, "http://vigil-1:7070"},
		{"http", ":7070", unnamed, "http://localhost:7070"},
	} {
		got, err := externalURL(tc.scheme, tc.addr, tc.hostname)
		if err != nil {
			t.Errorf("%s %s: %v", tc.scheme, tc.addr, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.scheme, tc.addr, got, tc.want)
		}
	}
	if _, err := externalURL("http", "no-port", named); err == nil {
		t.Error("an address without a port gave an external URL")
	}
}

// The scheme follows the web config: https once it turns TLS on.
func TestExternalURLScheme(t *testing.T) {
	dir := t.TempDir()
	testcert.Write(t, dir)
	web := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(web, []byte("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbearer_tokens: [{name: c, sha256: "+strings.Repeat("ab", 32)+", roles: [read]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTLS, err := auth.Load(web)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth *auth.Authenticator
		want string
	}{
		{nil, "http://127.0.0.1:7070"},
		{withTLS, "https://127.0.0.1:7070"},
	} {
		c := Defaults()
		c.HTTPAddr, c.Auth = "127.0.0.1:7070", tc.auth
		got, err := c.ExternalURL()
		if err != nil || got.String() != tc.want {
			t.Errorf("ExternalURL() = %v, %v; want %s", got, err, tc.want)
		}
	}
}
