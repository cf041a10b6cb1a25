package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/vigil-observability/vigil/sdk/health"
)

// TestHealthOf: the health checker's report maps to Consul's statuses,
// with the failing checks as the output.
func TestHealthOf(t *testing.T) {
	h := health.New(health.Options{})
	var optional, critical error
	h.Register("cache", func(context.Context) error { return optional })
	h.Register("db", func(context.Context) error { return critical }, health.Critical())
	f := HealthOf(h)
	for _, tc := range []struct {
		optional, critical error
		status             Status
		output             string
	}{
		{nil, nil, Passing, ""},
		{errors.New("cold"), nil, Warning, "cache: cold"},
		{errors.New("cold"), errors.New("gone"), Critical, "cache: cold; db: gone"},
		{nil, errors.New("gone"), Critical, "db: gone"},
	} {
		optional, critical = tc.optional, tc.critical
		if s, out := f(t.Context()); s != tc.status || out != tc.output {
			t.Errorf("optional %v, critical %v: %s %q, want %s %q", tc.optional, tc.critical, s, out, tc.status, tc.output)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, o := range []Options{
		{URL: "", Service: "s"},
		{URL: "vigil:7070", Service: "s"},
		{URL: "http://vigil:7070"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	c, err := New(Options{URL: "http://vigil:7070/", Service: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.ID != "shop" || c.opts.TTL.Seconds() != 15 || c.opts.Interval.Seconds() != 5 || c.checkID != "service:shop" || c.opts.URL != "http://vigil:7070" {
		t.Fatalf("defaults %+v", c.opts)
	}
	// Close without Start does nothing.
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
