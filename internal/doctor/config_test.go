package doctor

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
)

func loadPromConfig(t *testing.T, yml string) func() *promconfig.Config {
	t.Helper()
	cfg, err := promconfig.Load(yml, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func() *promconfig.Config { return cfg }
}

// subjects lists findings as "code subject", sorted.
func subjects(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Code+" "+f.Subject)
	}
	slices.Sort(out)
	return out
}

func TestConfigCheckOffline(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []string
		// in is a substring the first finding's summary, cause or fix has.
		in string
	}{
		{
			name: "healthy",
			yml: `
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: shop
    scrape_interval: 30s
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - action: labeldrop
        regex: pod_template_hash|controller_revision_hash
      - source_labels: [pod]
        target_label: instance
  - job_name: api
    scheme: https
    static_configs: [{targets: ["api:443"]}]
`,
		},
		{
			name: "global interval under 5s",
			yml: `
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
  - job_name: db
    static_configs: [{targets: ["db:9187"]}]
`,
			want: []string{"config_smell global scrape_interval"},
			in:   "scraped 15 times as often",
		},
		{
			name: "job interval under 5s",
			yml: `
scrape_configs:
  - job_name: shop
    scrape_interval: 2s
    scrape_timeout: 1s
    static_configs: [{targets: ["shop:8080"]}]
`,
			want: []string{"config_smell job shop scrape_interval"},
			in:   "between 15s and 60s in the scrape config of job shop",
		},
		{
			name: "labeldrop instance",
			yml: `
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - action: labeldrop
        regex: "instance|pod"
`,
			want: []string{"config_smell job shop metric_relabel_configs"},
			in:   "remove the instance label",
		},
		{
			name: "labelkeep without job and instance",
			yml: `
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - action: labelkeep
        regex: "__name__|le|code"
`,
			want: []string{"config_smell job shop metric_relabel_configs"},
			in:   "remove the job and instance label",
		},
		{
			name: "replace writing job empty",
			yml: `
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["shop:8080"]}]
    metric_relabel_configs:
      - target_label: job
        replacement: ""
`,
			want: []string{"config_smell job shop metric_relabel_configs"},
			in:   "remove the job label",
		},
		{
			name: "http on an https port",
			yml: `
scrape_configs:
  - job_name: api
    static_configs: [{targets: ["api.internal:443"]}]
`,
			want: []string{"config_smell job api scheme"},
			in:   "scheme: https",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigCheck{Config: loadPromConfig(t, tt.yml)}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			if s := subjects(got); !slices.Equal(s, tt.want) {
				t.Fatalf("findings %v, want %v once each: %+v", s, tt.want, got)
			}
			if len(got) == 0 {
				return
			}
			f := got[0]
			if f.Severity != Warning || f.Cause == "" || f.Fix == "" || f.Evidence.Summary == "" {
				t.Errorf("incomplete finding %+v", f)
			}
			if all := f.Evidence.Summary + f.Cause + f.Fix; !strings.Contains(all, tt.in) {
				t.Errorf("finding %+v does not say %q", f, tt.in)
			}
		})
	}
}

// TestConfigCheckHTTPAgainstHTTPS: a plain-HTTP scrape of an HTTPS-only
// target fails with HTTP 400; a handshake to the same address confirms
// the target speaks TLS. A plain-HTTP target that answers 400 for its
// own reasons is not reported.
func TestConfigCheckHTTPAgainstHTTPS(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad", http.StatusBadRequest)
	}))
	defer plain.Close()
	host := func(s *httptest.Server) string { u, _ := url.Parse(s.URL); return u.Host }
	status400 := errors.New("server returned HTTP status 400 Bad Request")
	cfg := loadPromConfig(t, `
scrape_configs:
  - job_name: shop
    static_configs: [{targets: ["127.0.0.1:1"]}]
`)
	tests := []struct {
		name   string
		target *scrape.Target
		prober *Prober
		want   []string
	}{
		{"https-only target, confirmed by a handshake", schemeTarget("http", host(tlsSrv), status400), NewProber(ProberOptions{}), []string{"config_smell job shop scheme"}},
		{"TLS alert read as HTTP, no probe needed", schemeTarget("http", "10.0.0.1:8443", errors.New(`Get "http://10.0.0.1:8443/metrics": net/http: HTTP/1.x transport connection broken: malformed HTTP response "\x15\x03\x01\x00\x02\x02"`)), nil, []string{"config_smell job shop scheme"}},
		{"plain target answering 400", schemeTarget("http", host(plain), status400), NewProber(ProberOptions{}), nil},
		{"400 without a prober", schemeTarget("http", host(tlsSrv), status400), nil, nil},
		{"healthy", schemeTarget("http", host(plain), nil), NewProber(ProberOptions{}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigCheck{Config: cfg, Targets: fixedTargets{"shop": {tt.target}}, Prober: tt.prober}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, tt.want...)
			if s := subjects(got); !slices.Equal(s, tt.want) {
				t.Fatalf("findings %v, want %v once each: %+v", s, tt.want, got)
			}
			if len(got) == 1 && !strings.Contains(got[0].Fix, "scheme: https in the scrape config of job shop") {
				t.Errorf("fix %q", got[0].Fix)
			}
		})
	}
}

func schemeTarget(scheme, addr string, err error) *scrape.Target {
	t := scrape.NewTarget(labels.FromStrings(
		"__address__", addr, "__scheme__", scheme, "__metrics_path__", "/metrics",
		"job", "shop", "instance", addr, "__scrape_interval__", "15s", "__scrape_timeout__", "10s",
	), &promconfig.ScrapeConfig{}, nil, nil)
	t.Report(time.Now(), time.Millisecond, err)
	return t
}
