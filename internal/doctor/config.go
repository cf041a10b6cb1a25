package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/scrape"
)

// MinScrapeInterval is the shortest scrape_interval not reported as a
// config_smell.
const MinScrapeInterval = 5 * time.Second

// ConfigCheck finds the scrape configuration mistakes that break telemetry
// quietly (config_smell): scrape intervals under MinScrapeInterval,
// metric_relabel_configs that remove the job or instance label, and the
// http scheme against targets that only serve HTTPS. It needs no live data
// (vigil doctor --offline runs it); with Targets it also reads the scrape
// errors, and with a Prober confirms a suspected HTTPS-only target by a
// TLS handshake.
type ConfigCheck struct {
	// Config returns the configuration in force (it changes on reload).
	Config func() *promconfig.Config
	// Targets, optional, are the running scrape targets.
	Targets Targets
	// Prober, optional, makes the confirming handshakes.
	Prober *Prober
}

// Name implements Check.
func (c ConfigCheck) Name() string { return "config" }

// Run implements Check.
func (c ConfigCheck) Run(ctx context.Context) ([]Finding, error) {
	if c.Config == nil || c.Config() == nil {
		return nil, errors.New("doctor: ConfigCheck has no configuration")
	}
	cfg := c.Config()
	scs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return nil, fmt.Errorf("doctor: scrape configs: %w", err)
	}
	out := shortIntervals(cfg.GlobalConfig, scs)
	for _, sc := range scs {
		if f, ok := relabelDropsIdentity(sc); ok {
			out = append(out, f)
		}
	}
	if c.Targets == nil {
		out = append(out, httpsPortsOverHTTP(scs)...)
	} else {
		out = append(out, c.httpAgainstHTTPS(ctx)...)
	}
	return out, nil
}

// shortIntervals reports the global scrape_interval, with the jobs that
// inherit it, and the jobs that set their own, when under the minimum.
func shortIntervals(g promconfig.GlobalConfig, scs []*promconfig.ScrapeConfig) []Finding {
	global := time.Duration(g.ScrapeInterval)
	var inherit []string
	var out []Finding
	for _, sc := range scs {
		iv := time.Duration(sc.ScrapeInterval)
		if iv >= MinScrapeInterval {
			continue
		}
		if iv == global {
			inherit = append(inherit, "job "+sc.JobName)
			continue
		}
		out = append(out, shortInterval("job "+sc.JobName+" scrape_interval", "job "+sc.JobName, iv, nil))
	}
	if len(inherit) > 0 {
		who := strings.Join(inherit, ", ")
		out = append([]Finding{shortInterval("global scrape_interval", who, global, inherit)}, out...)
	}
	return out
}

func shortInterval(subject, who string, iv time.Duration, jobs []string) Finding {
	times := float64(15*time.Second) / float64(iv)
	where := "under global: in vigil.yaml, and in any job that sets its own"
	if jobs == nil {
		where = "in the scrape config of " + who
	}
	return Finding{
		Code: "config_smell", Severity: Warning, Subject: subject,
		Evidence: Evidence{
			Summary: fmt.Sprintf("scrape_interval is %s for %s: every target is scraped %.0f times as often as at 15s", model.Duration(iv), who, times),
			Values:  map[string]float64{"scrape_interval_seconds": iv.Seconds(), "scrapes_per_hour_per_target": time.Hour.Seconds() / iv.Seconds()},
			Samples: jobs,
		},
		Cause: fmt.Sprintf("an interval under %s multiplies the load on every target and the samples vigil stores, and leaves a scrape no slack "+
			"(scrape_timeout cannot exceed it): one slow scrape and the target counts as down, its series go stale and come back, and alerts and panels flap", model.Duration(MinScrapeInterval)),
		Fix: fmt.Sprintf("set scrape_interval to between 15s and 60s %s; for signals that need to be seen within seconds, use traces or a histogram rather than faster scrapes", where),
	}
}

// targetIdentityLabels tell a job's targets apart; a series without them
// collides with the same series of the job's other targets.
var targetIdentityLabels = []string{model.JobLabel, model.InstanceLabel}

// relabelDropsIdentity reports metric_relabel_configs that remove job or
// instance from the scraped series.
func relabelDropsIdentity(sc *promconfig.ScrapeConfig) (Finding, bool) {
	var removed, rules []string
	for i, rc := range sc.MetricRelabelConfigs {
		var gone []string
		for _, name := range targetIdentityLabels {
			if removesLabel(rc, name) {
				gone = append(gone, name)
			}
		}
		if len(gone) == 0 {
			continue
		}
		for _, g := range gone {
			if !slices.Contains(removed, g) {
				removed = append(removed, g)
			}
		}
		rules = append(rules, describeRelabel(i, rc))
	}
	if len(removed) == 0 {
		return Finding{}, false
	}
	what := strings.Join(removed, " and ")
	return Finding{
		Code: "config_smell", Severity: Warning, Subject: "job " + sc.JobName + " metric_relabel_configs",
		Evidence: Evidence{
			Summary: fmt.Sprintf("metric_relabel_configs of job %s remove the %s label from the scraped series", sc.JobName, what),
			Values:  map[string]float64{"rules": float64(len(rules))},
			Samples: rules,
		},
		Cause: fmt.Sprintf("without %s the series of the job's targets are the same series: their samples collide (rejected as duplicates or out of order, or "+
			"overwriting one another) and nothing can be queried, graphed or alerted on per target", what),
		Fix: fmt.Sprintf("remove the rule, or narrow its regex so that it no longer matches %s (labeldrop only the labels you mean, e.g. regex: 'pod_template_hash|controller_revision_hash'); "+
			"to rename a target, set instance with a replace action from another label rather than dropping it", what),
	}, true
}

// removesLabel tells whether rc deletes the label name from series.
func removesLabel(rc *relabel.Config, name string) bool {
	if rc.Regex.Regexp == nil {
		return false
	}
	switch rc.Action {
	case relabel.LabelDrop:
		return rc.Regex.MatchString(name)
	case relabel.LabelKeep:
		return !rc.Regex.MatchString(name)
	case relabel.Replace:
		// An empty result deletes the target label.
		return rc.TargetLabel == name && rc.Replacement == ""
	}
	return false
}

func describeRelabel(i int, rc *relabel.Config) string {
	s := fmt.Sprintf("metric_relabel_configs[%d]: action: %s", i, rc.Action)
	if rc.Action == relabel.Replace {
		return s + fmt.Sprintf(", target_label: %s, replacement: %q", rc.TargetLabel, rc.Replacement)
	}
	return s + fmt.Sprintf(", regex: %q", strings.TrimSuffix(strings.TrimPrefix(rc.Regex.String(), "^(?s:"), ")$"))
}

// httpsOnlyPorts are ports on which a target is all but certain to speak
// only HTTPS.
var httpsOnlyPorts = []string{"443", "6443", "10250"}

// httpsPortsOverHTTP is the scheme smell without targets to look at:
// static targets on HTTPS ports scraped over plain HTTP.
func httpsPortsOverHTTP(scs []*promconfig.ScrapeConfig) []Finding {
	var out []Finding
	for _, sc := range scs {
		if sc.Scheme != "http" {
			continue
		}
		var addrs []string
		for _, d := range sc.ServiceDiscoveryConfigs {
			static, ok := d.(discovery.StaticConfig)
			if !ok {
				continue
			}
			for _, g := range static {
				for _, t := range g.Targets {
					addr := string(t[model.AddressLabel])
					if _, port, err := net.SplitHostPort(addr); err == nil && slices.Contains(httpsOnlyPorts, port) {
						addrs = append(addrs, addr)
					}
				}
			}
		}
		if len(addrs) == 0 {
			continue
		}
		f := schemeFinding(sc.JobName, len(addrs),
			fmt.Sprintf("job %s scrapes %s with scheme http, on a port that serves HTTPS", sc.JobName, strings.Join(addrs, ", ")), addrs)
		f.Cause = fmt.Sprintf("job %s scrapes with scheme http (the default) targets on a port where servers speak only HTTPS (%s): they will refuse every scrape "+
			"(HTTP 400 \"Client sent an HTTP request to an HTTPS server\", or a TLS record vigil cannot read as HTTP)", sc.JobName, strings.Join(httpsOnlyPorts, ", "))
		out = append(out, f)
	}
	return out
}

// httpAgainstHTTPS finds jobs whose plain-HTTP scrapes fail because the
// targets speak only HTTPS: the target answers with a TLS record or an
// HTTP 400 (what Go's and most HTTPS servers send a plain request), which
// a TLS handshake to the same address confirms.
func (c ConfigCheck) httpAgainstHTTPS(ctx context.Context) []Finding {
	pools := c.Targets.TargetsActive()
	names := slices.Sorted(maps.Keys(pools))
	var out []Finding
	for _, pool := range names {
		var samples []string
		n := 0
		for _, t := range pools[pool] {
			u := t.URL()
			if t.Health() != scrape.HealthBad || u.Scheme != "http" || t.LastError() == nil {
				continue
			}
			seen, ok := c.speaksOnlyTLS(ctx, u.Host, u.Hostname(), t.LastError().Error())
			if !ok {
				continue
			}
			n++
			samples = append(samples, u.String()+": "+seen)
		}
		if n > 0 {
			out = append(out, schemeFinding(pool, n, fmt.Sprintf("%d target(s) of job %s fail their plain-HTTP scrapes and speak HTTPS", n, pool), samples))
		}
	}
	return out
}

// tlsAnswers are what servers answer a plain HTTP request on an HTTPS
// port; Go's client quotes a TLS alert record as a malformed response.
var tlsAnswers = []string{
	`malformed HTTP response "\x15\x03`,
	"Client sent an HTTP request to an HTTPS server",
	"The plain HTTP request was sent to HTTPS port",
}

func (c ConfigCheck) speaksOnlyTLS(ctx context.Context, addr, host, scrapeErr string) (string, bool) {
	for _, a := range tlsAnswers {
		if strings.Contains(scrapeErr, a) {
			return scrapeErr, true
		}
	}
	if c.Prober == nil || !strings.Contains(scrapeErr, "server returned HTTP status 400") {
		return "", false
	}
	h := c.Prober.Handshake(ctx, addr, &tls.Config{ServerName: host})
	if h.Err != nil || len(h.Certs) == 0 {
		return "", false
	}
	return fmt.Sprintf("%s; a TLS handshake with %s succeeds (certificate %s)", scrapeErr, addr, certName(h.Certs[0])), true
}

func schemeFinding(job string, targets int, summary string, samples []string) Finding {
	return Finding{
		Code: "config_smell", Severity: Warning, Subject: "job " + job + " scheme",
		Evidence: Evidence{
			Summary: summary,
			Values:  map[string]float64{"targets": float64(targets)},
			Samples: samples,
		},
		Cause: fmt.Sprintf("job %s scrapes with scheme http (the default) targets that only serve HTTPS: they refuse every scrape "+
			"(HTTP 400 \"Client sent an HTTP request to an HTTPS server\", or a TLS record vigil cannot read as HTTP)", job),
		Fix: fmt.Sprintf("set scheme: https in the scrape config of job %s (and tls_config.ca_file if the target's certificate comes from a private CA)", job),
	}
}
