package doctor

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/scrape"
)

// ProberOptions configures a Prober. Zero values get the defaults noted.
type ProberOptions struct {
	// Timeout bounds one handshake (3s).
	Timeout time.Duration
	// Every is how long a handshake's result is reused (10m): the doctor
	// runs every minute, and certificates change far less often.
	Every time.Duration
	Now   func() time.Time
}

// Prober makes TLS handshakes with scrape targets to look at the
// certificates they serve, at most once per target and server name per
// Every. It is safe for concurrent use.
type Prober struct {
	opts  ProberOptions
	mu    sync.Mutex
	cache map[string]Handshake
}

// NewProber returns a Prober with an empty cache.
func NewProber(opts ProberOptions) *Prober {
	opts.Timeout = cmp.Or(opts.Timeout, 3*time.Second)
	opts.Every = cmp.Or(opts.Every, 10*time.Minute)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Prober{opts: opts, cache: map[string]Handshake{}}
}

// Handshake is what a TLS handshake with a target showed.
type Handshake struct {
	// Certs are the certificates the server sent, its own first. They are
	// not verified: a broken chain is what the doctor wants to look at.
	Certs []*x509.Certificate
	// Err is why the handshake itself failed (nothing listens, the server
	// speaks plain HTTP...).
	Err error
	At  time.Time
}

// Handshake connects to addr with conf (its ServerName and client
// certificate; verification is skipped) and returns the certificates the
// server sent, or the result of an earlier handshake younger than Every.
func (p *Prober) Handshake(ctx context.Context, addr string, conf *tls.Config) Handshake {
	c := &tls.Config{}
	if conf != nil {
		c = conf.Clone()
	}
	c.InsecureSkipVerify = true
	key := addr + "\x00" + c.ServerName
	now := p.opts.Now()
	p.mu.Lock()
	if h, ok := p.cache[key]; ok && now.Sub(h.At) < p.opts.Every {
		p.mu.Unlock()
		return h
	}
	// Forget targets that are gone, so the cache stays as small as the
	// set of targets.
	for k, h := range p.cache {
		if now.Sub(h.At) >= p.opts.Every {
			delete(p.cache, k)
		}
	}
	p.mu.Unlock()

	hctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	h := Handshake{At: now}
	d := tls.Dialer{Config: c}
	conn, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		h.Err = err
	} else {
		h.Certs = conn.(*tls.Conn).ConnectionState().PeerCertificates
		_ = conn.Close()
	}
	if ctx.Err() != nil {
		return h // cut short by the caller: not worth remembering
	}
	p.mu.Lock()
	p.cache[key] = h
	p.mu.Unlock()
	return h
}

// TLSCheck looks at the certificates https scrape targets serve: it
// explains TLS scrape failures precisely (an incomplete chain, an expired
// certificate, a wrong name) for ScrapeCheck through Diagnose, and Run
// reports the certificates of targets that still scrape fine but expire
// within ExpiryWarning. Both report target_down with the class tls, at
// most one finding per target: Run leaves targets that fail to ScrapeCheck.
type TLSCheck struct {
	// Config returns the configuration in force, for each job's tls_config.
	Config  func() *promconfig.Config
	Targets Targets
	// Prober makes (and rate-limits) the handshakes. Required.
	Prober *Prober
	// ExpiryWarning is how close to its end a certificate is reported
	// (14 days if 0).
	ExpiryWarning time.Duration
	Now           func() time.Time
}

// Name implements Check.
func (c TLSCheck) Name() string { return "tls" }

// Run implements Check.
func (c TLSCheck) Run(ctx context.Context) ([]Finding, error) {
	if c.Prober == nil || c.Targets == nil {
		return nil, errors.New("doctor: TLSCheck needs Targets and a Prober")
	}
	pools := c.Targets.TargetsActive()
	names := slices.Sorted(maps.Keys(pools))
	var out []Finding
	for _, pool := range names {
		for _, t := range pools[pool] {
			// A failing target is ScrapeCheck's to report.
			if t.URL().Scheme != "https" || t.Health() == scrape.HealthBad {
				continue
			}
			d, ok := c.examine(ctx, pool, t)
			if !ok {
				continue
			}
			if d.severity == Critical && d.kind != tlsExpired {
				// The chain does not verify, yet scrapes succeed: other
				// clients fail, vigil does not (yet).
				d.severity = Warning
			}
			out = append(out, d.finding(pool, t, "scrapes still succeed (tls): "+d.summary))
		}
	}
	return out, nil
}

// Diagnose explains why t's scrape failed in the TLS handshake, from the
// certificates its server sends. ok is false when the handshake shows
// nothing more specific than the scrape error itself.
func (c TLSCheck) Diagnose(ctx context.Context, pool string, t *scrape.Target) (Finding, bool) {
	if c.Prober == nil {
		return Finding{}, false
	}
	d, ok := c.examine(ctx, pool, t)
	if !ok || d.kind == tlsExpiring {
		return Finding{}, false
	}
	d.severity = Critical
	summary := fmt.Sprintf("the last scrape at %s failed (tls): %s", t.LastScrape().UTC().Format(time.RFC3339), d.summary)
	return d.finding(pool, t, summary), true
}

type tlsKind int

const (
	tlsExpiring tlsKind = iota
	tlsExpired
	tlsIncompleteChain
	tlsSelfSigned
	tlsUntrusted
	tlsWrongName
	tlsPlainHTTP
)

// tlsDiagnosis is what is wrong with a target's TLS, in words.
type tlsDiagnosis struct {
	kind                tlsKind
	severity            Severity
	summary, cause, fix string
	values              map[string]float64
	samples             []string
}

func (d tlsDiagnosis) finding(pool string, t *scrape.Target, summary string) Finding {
	samples := append([]string{fmt.Sprintf(`up{job=%q,instance=%q}`, t.GetValue(model.JobLabel), t.GetValue(model.AddressLabel))}, d.samples...)
	return Finding{
		Code: "target_down", Severity: d.severity, Subject: pool + " " + t.URL().String(),
		Evidence: Evidence{Summary: summary, Values: d.values, Samples: samples},
		Cause:    d.cause,
		Fix:      d.fix,
	}
}

// examine handshakes with t as its job's tls_config says and judges what
// the server sent.
func (c TLSCheck) examine(ctx context.Context, pool string, t *scrape.Target) (tlsDiagnosis, bool) {
	sc := scrapeConfig(c.Config, pool)
	if sc == nil {
		// A job just removed by a reload: without its tls_config, a
		// private CA would look untrusted.
		return tlsDiagnosis{}, false
	}
	tc := sc.HTTPClientConfig.TLSConfig
	conf, err := commonconfig.NewTLSConfig(&tc)
	if err != nil {
		return tlsDiagnosis{}, false // the scrape error says so already
	}
	u := t.URL()
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	if conf.ServerName == "" {
		conf.ServerName = u.Hostname()
	}
	h := c.Prober.Handshake(ctx, addr, conf)
	now := clockOf(c.Now)
	return judgeTLS(h, tlsJudgement{
		job: pool, addr: addr, roots: conf.RootCAs, serverName: conf.ServerName,
		verify: !tc.InsecureSkipVerify, now: now(), warnWithin: cmp.Or(c.ExpiryWarning, 14*24*time.Hour),
	})
}

// scrapeConfig returns the scrape config of the job named pool, if any.
func scrapeConfig(cfg func() *promconfig.Config, pool string) *promconfig.ScrapeConfig {
	if cfg == nil || cfg() == nil {
		return nil
	}
	scs, err := cfg().GetScrapeConfigs()
	if err != nil {
		return nil
	}
	for _, sc := range scs {
		if sc.JobName == pool {
			return sc
		}
	}
	return nil
}

type tlsJudgement struct {
	job, addr  string
	roots      *x509.CertPool // nil: the system's
	serverName string
	verify     bool // false with insecure_skip_verify
	now        time.Time
	warnWithin time.Duration
}

// judgeTLS names the most serious problem of a handshake's certificates:
// one that makes verification fail first, then an expiry to come.
func judgeTLS(h Handshake, j tlsJudgement) (tlsDiagnosis, bool) {
	if h.Err != nil {
		if strings.Contains(h.Err.Error(), "first record does not look like a TLS handshake") {
			return tlsDiagnosis{
				kind: tlsPlainHTTP, severity: Critical,
				summary: j.addr + " answers in plain HTTP, not HTTPS",
				cause:   "the scrape config uses scheme: https for a target that does not speak TLS",
				fix:     fmt.Sprintf("set scheme: http in the scrape config of job %s (or enable TLS on the target)", j.job),
			}, true
		}
		return tlsDiagnosis{}, false
	}
	if len(h.Certs) == 0 {
		return tlsDiagnosis{}, false
	}
	leaf := h.Certs[0]
	soonest := h.Certs[0]
	for _, c := range h.Certs[1:] {
		if c.NotAfter.Before(soonest.NotAfter) {
			soonest = c
		}
	}
	daysLeft := soonest.NotAfter.Sub(j.now).Hours() / 24
	values := map[string]float64{"days_left": math.Floor(daysLeft), "certificates_sent": float64(len(h.Certs))}
	var samples []string
	for _, c := range h.Certs {
		samples = append(samples, fmt.Sprintf("%s (issuer %s, not after %s)", certName(c), quoted(c.Issuer.CommonName), c.NotAfter.UTC().Format(time.DateOnly)))
	}
	which := "the target's certificate " + certName(soonest)
	if soonest != leaf {
		which = "the intermediate certificate " + certName(soonest) + " the target sends"
	}
	expiry := tlsDiagnosis{values: values, samples: samples}
	switch {
	case !j.now.Before(soonest.NotAfter):
		expiry.kind, expiry.severity = tlsExpired, Critical
		expiry.summary = fmt.Sprintf("%s expired on %s (%d days ago)", which, soonest.NotAfter.UTC().Format(time.DateOnly), int(-daysLeft))
		expiry.cause = "the certificate's validity has ended, so TLS clients, vigil's scrapes among them, reject it"
		expiry.fix = fmt.Sprintf("renew %s and reload the target with it (if it is renewed automatically, find out why renewal stopped)", certName(soonest))
		if !j.verify {
			// insecure_skip_verify: vigil's scrapes still work.
			expiry.severity = Warning
		}
		return expiry, true
	case soonest.NotAfter.Sub(j.now) <= j.warnWithin:
		expiry.kind, expiry.severity = tlsExpiring, Warning
		expiry.summary = fmt.Sprintf("%s expires in %d days, on %s", which, int(daysLeft), soonest.NotAfter.UTC().Format(time.DateOnly))
		expiry.cause = "once the certificate expires, TLS clients, vigil's scrapes among them, reject it and the target is down"
		expiry.fix = fmt.Sprintf("renew %s before %s (and check that automatic renewal runs)", certName(soonest), soonest.NotAfter.UTC().Format(time.DateOnly))
	}
	if !j.verify {
		return expiry, expiry.summary != ""
	}
	d, ok := verifyChain(h.Certs, j)
	if !ok {
		return expiry, expiry.summary != ""
	}
	d.values, d.samples = values, samples
	if expiry.summary != "" {
		d.summary += "; also, " + expiry.summary
	}
	return d, true
}

// verifyChain explains why the chain the server sent does not verify, or
// does not cover the name vigil connects to.
func verifyChain(certs []*x509.Certificate, j tlsJudgement) (tlsDiagnosis, bool) {
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// Judge the chain's shape, not its dates: those are judged apart.
	at := j.now
	for _, c := range certs {
		if !at.Before(c.NotAfter) {
			at = c.NotAfter.Add(-time.Second)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: j.roots, Intermediates: inter, CurrentTime: at})
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknown):
		// Follow the chain the server sent as far as it goes.
		top := leaf
		for range certs {
			next := issuerIn(top, certs)
			if next == nil {
				break
			}
			top = next
		}
		selfSigned := bytes.Equal(top.RawIssuer, top.RawSubject)
		switch {
		case top == leaf && selfSigned:
			return tlsDiagnosis{
				kind: tlsSelfSigned, severity: Critical,
				summary: fmt.Sprintf("the server sends a self-signed certificate (%s) that vigil does not trust", certName(leaf)),
				cause:   "the certificate is signed by itself, not by a CA vigil trusts",
				fix:     fmt.Sprintf("set tls_config.ca_file in the scrape config of job %s to that certificate (or to the CA that should sign it), or serve a certificate from a trusted CA", j.job),
			}, true
		case top == leaf:
			missing := quoted(leaf.Issuer.CommonName)
			summary := fmt.Sprintf("the server sends only its own certificate, not the intermediate %s that issued it, so the chain stops short of a trusted root", missing)
			if len(certs) > 1 {
				summary = fmt.Sprintf("the server sends %d certificates, but not the intermediate %s that issued its own, so the chain stops short of a trusted root", len(certs), missing)
			}
			return tlsDiagnosis{
				kind: tlsIncompleteChain, severity: Critical,
				summary: summary,
				cause:   "the certificate chain is incomplete: clients that do not already hold the intermediate, vigil's scrapes among them, fail with \"certificate signed by unknown authority\"",
				fix: fmt.Sprintf("serve the full chain: make the target's certificate file its own certificate followed by the intermediates (cat cert.pem intermediate.pem > chain.pem; with ACME, fullchain.pem rather than cert.pem); "+
					"if %s is your own root CA, set tls_config.ca_file in job %s to it instead", missing, j.job),
			}, true
		}
		name := certName(top)
		if !selfSigned {
			name = quoted(top.Issuer.CommonName)
		}
		return tlsDiagnosis{
			kind: tlsUntrusted, severity: Critical,
			summary: fmt.Sprintf("the chain the server sends leads to %s, a CA vigil does not trust", name),
			cause:   "the target's certificate comes from a private CA that is not among the roots vigil trusts for this job",
			fix:     fmt.Sprintf("set tls_config.ca_file in the scrape config of job %s to the certificate of %s", j.job, name),
		}, true
	case err != nil:
		return tlsDiagnosis{}, false
	}
	if j.serverName != "" && leaf.VerifyHostname(j.serverName) != nil {
		valid := slices.Clone(leaf.DNSNames)
		for _, ip := range leaf.IPAddresses {
			valid = append(valid, ip.String())
		}
		if len(valid) == 0 {
			valid = []string{"no name at all (it has no subject alternative names)"}
		}
		return tlsDiagnosis{
			kind: tlsWrongName, severity: Critical,
			summary: fmt.Sprintf("the certificate is valid for %s, not for %q, the name vigil connects to", strings.Join(valid, ", "), j.serverName),
			cause:   "the target's certificate does not cover the name in the scrape URL",
			fix: fmt.Sprintf("scrape the target by a name the certificate covers, or set tls_config.server_name in job %s to one of them, or reissue the certificate with %q among its names",
				j.job, j.serverName),
		}, true
	}
	return tlsDiagnosis{}, false
}

// issuerIn returns the certificate among certs whose subject is c's
// issuer, or nil.
func issuerIn(c *x509.Certificate, certs []*x509.Certificate) *x509.Certificate {
	for _, o := range certs {
		if o != c && bytes.Equal(o.RawSubject, c.RawIssuer) {
			return o
		}
	}
	return nil
}

// certName names a certificate by its common name, quoted.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return quoted(c.Subject.CommonName)
	}
	if len(c.DNSNames) > 0 {
		return quoted(c.DNSNames[0])
	}
	return quoted(c.Subject.String())
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }
