package doctor

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/scrape"
)

// Targets lists the scrape targets; *scrape.Manager satisfies it.
type Targets interface {
	TargetsActive() map[string][]*scrape.Target
}

// ScrapeCheck finds targets whose scrapes fail (target_down), with the
// error's class, and targets whose scrapes take most of their timeout
// (scrape_near_timeout).
type ScrapeCheck struct {
	Targets Targets
	// NearTimeout is the share of the timeout a scrape may take before it
	// is reported (0.8 if 0).
	NearTimeout float64
	// TLS, when set, explains TLS failures from the certificates the
	// target serves (an incomplete chain, an expired certificate), in
	// place of the scrape error's generic words.
	TLS TLSDiagnoser
}

// TLSDiagnoser explains a target's TLS scrape failure; TLSCheck is one.
type TLSDiagnoser interface {
	Diagnose(ctx context.Context, pool string, t *scrape.Target) (Finding, bool)
}

// Name implements Check.
func (c ScrapeCheck) Name() string { return "scrape" }

// Run implements Check.
func (c ScrapeCheck) Run(ctx context.Context) ([]Finding, error) {
	near := c.NearTimeout
	if near <= 0 {
		near = 0.8
	}
	var out []Finding
	pools := c.Targets.TargetsActive()
	names := slices.Sorted(maps.Keys(pools))
	for _, pool := range names {
		for _, t := range pools[pool] {
			subject := pool + " " + t.URL().String()
			if f, ok := targetDown(t, subject); ok {
				if class, _, _ := classify(t.LastError(), t); class == "tls" && c.TLS != nil {
					if d, ok := c.TLS.Diagnose(ctx, pool, t); ok {
						f = d
					}
				}
				out = append(out, f)
				continue
			}
			if f, ok := nearTimeout(t, subject, near); ok {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func targetDown(t *scrape.Target, subject string) (Finding, bool) {
	if t.Health() != scrape.HealthBad {
		return Finding{}, false
	}
	err := t.LastError()
	class, cause, fix := classify(err, t)
	return Finding{
		Code:     "target_down",
		Severity: Critical,
		Subject:  subject,
		Evidence: Evidence{
			Summary: fmt.Sprintf("the last scrape at %s failed (%s): %v", t.LastScrape().UTC().Format(time.RFC3339), class, err),
			Values:  map[string]float64{"last_scrape_seconds": t.LastScrapeDuration().Seconds()},
			Samples: []string{fmt.Sprintf(`up{job=%q,instance=%q}`, t.GetValue(model.JobLabel), t.GetValue(model.AddressLabel))},
		},
		Cause: cause,
		Fix:   fix,
	}, true
}

var httpStatus = regexp.MustCompile(`server returned HTTP status (\d{3})`)

// classify names the kind of scrape failure and what usually causes and
// fixes it.
func classify(err error, t *scrape.Target) (class, cause, fix string) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	addr := t.GetValue(model.AddressLabel)
	var dnsErr *net.DNSError
	var unknownAuthority x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "context deadline exceeded") || strings.Contains(msg, "Client.Timeout"):
		return "timeout", "the target did not answer within the scrape timeout (" + t.GetValue(model.ScrapeTimeoutLabel) + ")",
			"check that " + addr + " is reachable from vigil and responds quickly; if /metrics is slow, raise scrape_timeout (at most scrape_interval) or reduce its series"
	case errors.As(err, &dnsErr) || strings.Contains(msg, "no such host"):
		return "dns", "the target's host name does not resolve",
			"fix the host name in the scrape config (or its service discovery), or the DNS record of " + addr
	case strings.Contains(msg, "connection refused"):
		return "refused", "nothing listens on " + addr + " (the service is down, or listens on another port or only on localhost)",
			"start the service, or point the scrape config at the port its metrics endpoint listens on"
	case errors.As(err, &unknownAuthority) || strings.Contains(msg, "certificate signed by unknown authority"):
		return "tls", "the target's certificate chain does not lead to a trusted CA: a missing intermediate certificate or a private CA",
			"serve the full chain (leaf + intermediates) on the target, or set tls_config.ca_file in the scrape config"
	case errors.As(err, &hostErr) || strings.Contains(msg, "certificate is valid for"):
		return "tls", "the target's certificate is not valid for the name vigil connects to",
			"scrape the name the certificate is issued for, or set tls_config.server_name"
	case errors.As(err, &certErr) || strings.Contains(msg, "certificate has expired") || strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") ||
		strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "tls", "the TLS handshake failed: " + msg,
			"renew or fix the target's certificate, or adjust tls_config in the scrape config"
	}
	if m := httpStatus.FindStringSubmatch(msg); m != nil {
		switch m[1] {
		case "401", "403":
			return "http " + m[1], "the target refuses vigil's scrape: authentication is required",
				"set basic_auth, authorization or oauth2 in the scrape config"
		case "404":
			return "http 404", "the target has no metrics at " + t.URL().Path + " (the handler is not mounted, or on another path)",
				"mount the metrics handler (promhttp.Handler(), or the vigil SDK's Mount) or set metrics_path in the scrape config"
		}
		return "http " + m[1], "the target answered the scrape with HTTP " + m[1],
			"look at the target's logs for the error its metrics endpoint returns"
	}
	return "other", "the scrape failed: " + msg, "look at the error above and the target's logs"
}

func nearTimeout(t *scrape.Target, subject string, share float64) (Finding, bool) {
	timeout, err := model.ParseDuration(t.GetValue(model.ScrapeTimeoutLabel))
	if err != nil || timeout <= 0 {
		return Finding{}, false
	}
	took := t.LastScrapeDuration()
	ratio := took.Seconds() / time.Duration(timeout).Seconds()
	if ratio <= share {
		return Finding{}, false
	}
	return Finding{
		Code:     "scrape_near_timeout",
		Severity: Warning,
		Subject:  subject,
		Evidence: Evidence{
			Summary: fmt.Sprintf("the last scrape took %s of its %s timeout (%.0f%%)", took.Round(time.Millisecond), timeout, 100*ratio),
			Values:  map[string]float64{"scrape_seconds": took.Seconds(), "timeout_seconds": time.Duration(timeout).Seconds(), "ratio": ratio},
		},
		Cause: "the target's metrics endpoint is slow or returns very many series; one slower scrape and it will be reported down",
		Fix:   "reduce the series the target exposes (drop high-cardinality labels), or raise scrape_timeout toward scrape_interval",
	}, true
}
