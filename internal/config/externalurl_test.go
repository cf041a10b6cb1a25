package config

import (
	"errors"
	"testing"
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
