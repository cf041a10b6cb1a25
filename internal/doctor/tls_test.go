package doctor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
)

// testPKI is a private CA: a root, an intermediate it signs, and leaves the
// intermediate signs.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	rootFile          string // the root in PEM, for tls_config.ca_file
}

var serial atomic.Int64

func issue(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{
			Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
	}
	p := &testPKI{}
	p.root, p.rootKey = issue(t, ca("vigil test root"), nil, nil)
	p.inter, p.interKey = issue(t, ca("vigil test intermediate"), p.root, p.rootKey)
	p.rootFile = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(p.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// leaf issues a server certificate for 127.0.0.1 and localhost valid
// from notBefore for the given time, signed by the intermediate.
func (p *testPKI) leaf(t *testing.T, cn string, notBefore time.Time, valid time.Duration) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	return issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notBefore.Add(valid),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, p.interKey)
}

// serveTLS starts an HTTPS server sending chain (leaf first); handshakes
// counts the handshakes it sees.
func serveTLS(t *testing.T, key *ecdsa.PrivateKey, chain ...*x509.Certificate) (addr string, handshakes *atomic.Int64) {
	t.Helper()
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	handshakes = &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, VerifyConnection: func(tls.ConnectionState) error {
		handshakes.Add(1)
		return nil
	}}
	// The prober hangs up right after the handshake; that is not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host, handshakes
}

func httpsTarget(addr string, err error) *scrape.Target {
	t := scrape.NewTarget(labels.FromStrings(
		"__address__", addr, "__scheme__", "https", "__metrics_path__", "/metrics",
		"job", "shop", "instance", addr, "__scrape_interval__", "15s", "__scrape_timeout__", "10s",
	), &promconfig.ScrapeConfig{}, nil, nil)
	t.Report(time.Now(), time.Millisecond, err)
	return t
}

func shopConfig(t *testing.T, caFile string) func() *promconfig.Config {
	return loadPromConfig(t, fmt.Sprintf(`
scrape_configs:
  - job_name: shop
    scheme: https
    tls_config: {ca_file: %q}
    static_configs: [{targets: ["127.0.0.1:1"]}]
`, caFile))
}

//lint:ignore ST1005 the text of a real scrape error, as the scrape manager reports it
var errUnknownAuthority = errors.New(`Get "https://127.0.0.1/metrics": tls: failed to verify certificate: x509: certificate signed by unknown authority`)

// TestTLSDiagnosis: a target whose scrape fails in TLS is reported once,
// by ScrapeCheck, with what the handshake shows, and a healthy target
// whose certificate expires soon is reported by TLSCheck.
func TestTLSDiagnosis(t *testing.T) {
	pki := newPKI(t)
	now := time.Now()
	cfg := shopConfig(t, pki.rootFile)

	soon, soonKey := pki.leaf(t, "shop soon", now.Add(-time.Hour), 3*24*time.Hour+2*time.Hour)
	onlyLeaf, _ := serveTLS(t, soonKey, soon)
	soonChain, _ := serveTLS(t, soonKey, soon, pki.inter)
	good, goodKey := pki.leaf(t, "shop", now.Add(-time.Hour), 90*24*time.Hour)
	healthy, _ := serveTLS(t, goodKey, good, pki.inter)
	old, oldKey := pki.leaf(t, "shop old", now.Add(-100*24*time.Hour), 90*24*time.Hour)
	expired, _ := serveTLS(t, oldKey, old, pki.inter)
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	plainAddr := strings.TrimPrefix(plain.URL, "http://")

	tests := []struct {
		name     string
		target   *scrape.Target
		severity Severity // "" for no finding
		summary  []string
		fix      string
	}{
		{
			name:   "only the leaf, expiring in 3 days",
			target: httpsTarget(onlyLeaf, errUnknownAuthority), severity: Critical,
			summary: []string{`the server sends only its own certificate, not the intermediate "vigil test intermediate"`, "expires in 3 days"},
			fix:     "serve the full chain",
		},
		{
			name:   "expired",
			target: httpsTarget(expired, errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid")), severity: Critical,
			summary: []string{`"shop old" expired on`, "(10 days ago)"},
			fix:     "renew",
		},
		{
			name:   "plain HTTP behind scheme https",
			target: httpsTarget(plainAddr, errors.New(`Get "https://`+plainAddr+`/metrics": http: server gave HTTP response to HTTPS client`)), severity: Critical,
			summary: []string{"answers in plain HTTP"},
			fix:     "scheme: http",
		},
		{
			name:   "full chain expiring in 3 days, scrapes fine",
			target: httpsTarget(soonChain, nil), severity: Warning,
			summary: []string{`the target's certificate "shop soon" expires in 3 days, on ` + soon.NotAfter.UTC().Format(time.DateOnly)},
			fix:     "renew",
		},
		{name: "full chain valid for 90 days", target: httpsTarget(healthy, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := TLSCheck{Config: cfg, Targets: fixedTargets{"shop": {tt.target}}, Prober: NewProber(ProberOptions{})}
			fromTLS, err := tc.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			fromScrape, err := ScrapeCheck{Targets: tc.Targets, TLS: tc}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got := append(fromTLS, fromScrape...)
			if tt.severity == "" {
				expectFindings(t, got)
				return
			}
			expectFindings(t, got, "target_down shop "+tt.target.URL().String())
			if len(got) != 1 {
				t.Fatalf("%d findings, want one per target: %+v", len(got), got)
			}
			f := got[0]
			if f.Code != "target_down" || f.Severity != tt.severity || !strings.Contains(f.Evidence.Summary, "tls") {
				t.Errorf("finding %+v, want a %s target_down of class tls", f, tt.severity)
			}
			for _, s := range tt.summary {
				if !strings.Contains(f.Evidence.Summary, s) {
					t.Errorf("summary %q does not say %q", f.Evidence.Summary, s)
				}
			}
			if !strings.Contains(f.Fix, tt.fix) || f.Cause == "" {
				t.Errorf("cause %q, fix %q; want %q in the fix", f.Cause, f.Fix, tt.fix)
			}
		})
	}
}

func TestTLSWrongNameAndUntrustedCA(t *testing.T) {
	pki := newPKI(t)
	now := time.Now()
	good, key := pki.leaf(t, "shop", now.Add(-time.Hour), 90*24*time.Hour)
	addr, _ := serveTLS(t, key, good, pki.inter)
	wrongName := loadPromConfig(t, fmt.Sprintf(`
scrape_configs:
  - job_name: shop
    scheme: https
    tls_config: {ca_file: %q, server_name: metrics.example.com}
    static_configs: [{targets: ["127.0.0.1:1"]}]
`, pki.rootFile))
	other := newPKI(t) // a CA the target's chain does not lead to
	self, selfKey := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "shop self"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, nil, nil)
	selfAddr, _ := serveTLS(t, selfKey, self)
	for _, tt := range []struct {
		name string
		addr string
		cfg  func() *promconfig.Config
		want string
	}{
		{"server_name the certificate does not cover", addr, wrongName, `valid for localhost, 127.0.0.1, not for "metrics.example.com"`},
		{"ca_file of another CA", addr, shopConfig(t, other.rootFile), `leads to "vigil test root", a CA vigil does not trust`},
		{"self-signed", selfAddr, shopConfig(t, pki.rootFile), `self-signed certificate ("shop self")`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := TLSCheck{Config: tt.cfg, Prober: NewProber(ProberOptions{})}
			target := httpsTarget(tt.addr, errUnknownAuthority)
			f, ok := tc.Diagnose(t.Context(), "shop", target)
			var got []Finding
			if ok {
				got = append(got, f)
			}
			expectFindings(t, got, "target_down shop "+target.URL().String())
			if !ok || !strings.Contains(f.Evidence.Summary, tt.want) {
				t.Errorf("diagnosis %v %+v, want %q", ok, f, tt.want)
			}
		})
	}
}

// TestProberRateLimit: the doctor runs every minute; a target is
// handshaken once per Every, not at every run.
func TestProberRateLimit(t *testing.T) {
	pki := newPKI(t)
	soon, key := pki.leaf(t, "shop", time.Now().Add(-time.Hour), 3*24*time.Hour)
	addr, handshakes := serveTLS(t, key, soon, pki.inter)
	clock := time.Now()
	p := NewProber(ProberOptions{Every: 10 * time.Minute, Now: func() time.Time { return clock }})
	tc := TLSCheck{Config: shopConfig(t, pki.rootFile), Targets: fixedTargets{"shop": {httpsTarget(addr, nil)}}, Prober: p}
	for range 5 {
		got, err := tc.Run(t.Context())
		if err != nil || len(got) != 1 {
			t.Fatalf("run: %v %+v", err, got)
		}
		clock = clock.Add(time.Minute)
	}
	// The server counts a handshake after the prober has already hung
	// up, on its own goroutine: wait for it before counting.
	settled := func(want int64) int64 {
		deadline := time.Now().Add(5 * time.Second)
		for handshakes.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // time for one too many to show
		return handshakes.Load()
	}
	if n := settled(1); n != 1 {
		t.Errorf("%d handshakes in 5 runs within 10 minutes, want 1", n)
	}
	clock = clock.Add(10 * time.Minute)
	if _, err := tc.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := settled(2); n != 2 {
		t.Errorf("%d handshakes after 15 minutes, want 2", n)
	}
}
