package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
)

type fixedTargets map[string][]*scrape.Target

func (f fixedTargets) TargetsActive() map[string][]*scrape.Target { return f }

func target(addr string, took time.Duration, err error) *scrape.Target {
	t := scrape.NewTarget(labels.FromStrings(
		"__address__", addr, "__scheme__", "http", "__metrics_path__", "/metrics",
		"job", "shop", "instance", addr, "__scrape_interval__", "15s", "__scrape_timeout__", "10s",
	), &config.ScrapeConfig{}, nil, nil)
	t.Report(time.Now(), took, err)
	return t
}

func TestScrapeCheck(t *testing.T) {
	deadline := fmt.Errorf("Get \"http://a:1/metrics\": %w", context.DeadlineExceeded)
	tests := []struct {
		name       string
		target     *scrape.Target
		code       string
		class, fix string // substrings of the summary and the fix
	}{
		{"healthy", target("ok:1", time.Second, nil), "", "", ""},
		{"timeout", target("slow:1", 10*time.Second, deadline), "target_down", "timeout", "scrape_timeout"},
		{"refused", target("down:1", time.Millisecond, errors.New(`Get "http://down:1/metrics": dial tcp 127.0.0.1:1: connect: connection refused`)), "target_down", "refused", "start the service"},
		{"dns", target("nohost:1", time.Millisecond, &net.DNSError{Err: "no such host", Name: "nohost", IsNotFound: true}), "target_down", "dns", "host name"},
		{"tls chain", target("tls:1", time.Millisecond, errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")), "target_down", "tls", "full chain"},
		{"http 404", target("web:1", time.Millisecond, errors.New("server returned HTTP status 404 Not Found")), "target_down", "http 404", "metrics_path"},
		{"http 401", target("web:2", time.Millisecond, errors.New("server returned HTTP status 401 Unauthorized")), "target_down", "http 401", "basic_auth"},
		{"near timeout", target("busy:1", 9*time.Second, nil), "scrape_near_timeout", "90%", "scrape_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ScrapeCheck{Targets: fixedTargets{"shop": {tt.target}}}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.code == "" {
				expectFindings(t, got)
				return
			}
			expectFindings(t, got, tt.code+" shop "+tt.target.URL().String())
			if len(got) != 1 {
				return
			}
			f := got[0]
			if f.Code != tt.code || !strings.Contains(f.Evidence.Summary, tt.class) || !strings.Contains(f.Fix, tt.fix) || f.Cause == "" {
				t.Errorf("finding %+v, want %s, %q in the summary and %q in the fix", f, tt.code, tt.class, tt.fix)
			}
			if !strings.Contains(f.Subject, "shop") {
				t.Errorf("subject %q does not name the pool", f.Subject)
			}
		})
	}
}
