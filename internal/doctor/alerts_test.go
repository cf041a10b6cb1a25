package doctor

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"

	"github.com/vigil-observability/vigil/internal/alerting"
)

type fixedSuppressions []alerting.SuppressedAlert

func (f fixedSuppressions) Suppressed(context.Context) ([]alerting.SuppressedAlert, error) {
	return f, nil
}

type fixedDeliveries []alerting.DeliveryStatus

func (f fixedDeliveries) DeliveryStatus(time.Time) []alerting.DeliveryStatus { return f }

// findingKeys writes findings as "code severity subject", sorted.
func findingKeys(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Code+" "+string(f.Severity)+" "+f.Subject)
	}
	slices.Sort(out)
	return out
}

// withoutSeverity turns "code severity subject" keys into the "code
// subject" ones expectFindings takes; the severities are held to
// separately, through findingKeys.
func withoutSeverity(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		code, rest, _ := strings.Cut(k, " ")
		_, subject, _ := strings.Cut(rest, " ")
		out = append(out, code+" "+subject)
	}
	return out
}

func TestSuppressionCheck(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	silence := func(id string, started time.Time) alerting.Silence {
		return alerting.Silence{ID: id, CreatedBy: "alice", Comment: "db migration", Matchers: `{alertname="DiskFull"}`,
			StartsAt: started, EndsAt: now.Add(48 * time.Hour)}
	}
	diskFull := model.LabelSet{"alertname": "DiskFull", "instance": "db1", "severity": "warning"}
	pageLabels := model.LabelSet{"alertname": "NodeDown", "instance": "db2"}
	ticket := model.LabelSet{"alertname": "NodeDiskFull", "instance": "db2"}
	rule := "node-down-mutes-node-alerts"

	for _, tc := range []struct {
		name       string
		suppressed []alerting.SuppressedAlert
		want       []string
		// in: pieces the first finding's summary and fix must hold.
		summary, fix []string
	}{
		{name: "healthy: nothing suppressed"},
		{
			name: "silenced for 10m, under the threshold",
			suppressed: []alerting.SuppressedAlert{{Labels: diskFull, StartsAt: now.Add(-3 * time.Hour), Since: now.Add(-10 * time.Minute),
				Silences: []alerting.Silence{silence("s1", now.Add(-10*time.Minute))}}},
		},
		{
			name: "silenced for 3h",
			suppressed: []alerting.SuppressedAlert{{Labels: diskFull, StartsAt: now.Add(-4 * time.Hour), Since: now.Add(-3 * time.Hour),
				Silences: []alerting.Silence{silence("8a1f0c2e", now.Add(-3*time.Hour))}}},
			want:    []string{`alert_suppressed warning DiskFull{instance="db1"}`},
			summary: []string{"silenced for 3h0m0s", "silence 8a1f0c2e (by alice: \"db migration\", until 2026-11-23T12:00:00Z)"},
			fix:     []string{"amtool silence expire 8a1f0c2e", "/api/v2/silence/8a1f0c2e"},
		},
		{
			name: "inhibited for 2h by an alert that notifies",
			suppressed: []alerting.SuppressedAlert{{Labels: ticket, StartsAt: now.Add(-2 * time.Hour), Since: now.Add(-2 * time.Hour),
				Inhibitors: []alerting.Inhibitor{{Fingerprint: "f1", Labels: pageLabels, StartsAt: now.Add(-5 * time.Hour), Rules: []string{rule}}}}},
			want:    []string{`alert_suppressed info NodeDiskFull{instance="db2"}`},
			summary: []string{"inhibited for 2h0m0s", `{alertname="NodeDown", instance="db2"}`},
			fix:     []string{"resolve NodeDown", rule},
		},
		{
			name: "inhibited by an alert that is silenced itself",
			suppressed: []alerting.SuppressedAlert{{Labels: ticket, StartsAt: now.Add(-2 * time.Hour), Since: now.Add(-2 * time.Hour),
				Inhibitors: []alerting.Inhibitor{{Fingerprint: "f1", Labels: pageLabels, StartsAt: now.Add(-5 * time.Hour), Suppressed: true, Rules: []string{rule}}}}},
			want: []string{`alert_suppressed warning NodeDiskFull{instance="db2"}`},
			fix:  []string{"what mutes NodeDown", rule},
		},
		{
			name: "two alerts of one name are told apart by the labels that differ",
			suppressed: []alerting.SuppressedAlert{
				{Labels: model.LabelSet{"alertname": "HighLatency", "service": "checkout", "team": "shop"}, StartsAt: now.Add(-2 * time.Hour), Since: now.Add(-2 * time.Hour),
					Silences: []alerting.Silence{silence("s1", now.Add(-2*time.Hour))}},
				{Labels: model.LabelSet{"alertname": "HighLatency", "service": "payments", "team": "shop"}, StartsAt: now.Add(-2 * time.Hour), Since: now.Add(-2 * time.Hour),
					Silences: []alerting.Silence{silence("s1", now.Add(-2*time.Hour))}},
			},
			want: []string{`alert_suppressed warning HighLatency{service="checkout"}`, `alert_suppressed warning HighLatency{service="payments"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SuppressionCheck{Alerts: fixedSuppressions(tc.suppressed), Now: func() time.Time { return now }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, withoutSeverity(tc.want)...)
			if k := findingKeys(got); !slices.Equal(k, tc.want) {
				t.Fatalf("findings %q, want %q (severities included)", k, tc.want)
			}
			for _, s := range tc.summary {
				if !strings.Contains(got[0].Evidence.Summary, s) {
					t.Errorf("summary %q lacks %q", got[0].Evidence.Summary, s)
				}
			}
			for _, s := range tc.fix {
				if !strings.Contains(got[0].Fix, s) {
					t.Errorf("fix %q lacks %q", got[0].Fix, s)
				}
			}
		})
	}
}

func TestNotifyCheck(t *testing.T) {
	at := time.Date(2026, 11, 21, 11, 58, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		deliveries []alerting.DeliveryStatus
		want       []string
		fix        string // a piece of the first finding's fix
	}{
		{
			name:       "healthy: every attempt delivered",
			deliveries: []alerting.DeliveryStatus{{Receiver: "team", Integration: "webhook[0]", Attempts: 5}},
		},
		{
			name: "every attempt refused",
			deliveries: []alerting.DeliveryStatus{{Receiver: "team", Integration: "webhook[0]", Attempts: 7, Failures: 7,
				Class: alerting.ClassRefused, LastFailure: at, LastError: `Post "<redacted>": dial tcp 10.0.0.9:9000: connect: connection refused`}},
			want: []string{"notify_failures critical team/webhook[0]"},
			fix:  `receiver "team"'s webhook_configs[0]`,
		},
		{
			name: "a webhook to the cloud metadata address",
			deliveries: []alerting.DeliveryStatus{{Receiver: "team", Integration: "webhook[0]", Attempts: 3, Failures: 3,
				Class: alerting.ClassOutbound, LastFailure: at,
				LastError: `Post "<redacted>": dial tcp 169.254.169.254:80: outbound address 169.254.169.254 is link-local metadata, not allowed: allow it in vigil.yaml alerting.allow_outbound`}},
			want: []string{"notify_failures critical team/webhook[0]"},
			fix:  "alerting.allow_outbound",
		},
		{
			name: "a token revoked",
			deliveries: []alerting.DeliveryStatus{{Receiver: "oncall", Integration: "slack[1]", Attempts: 1, Failures: 1,
				Class: "http 403", LastFailure: at, LastError: "unexpected status code 403: invalid_token"}},
			want: []string{"notify_failures critical oncall/slack[1]"},
			fix:  "api_url for Slack",
		},
		{
			name: "some attempts failed with 5xx",
			deliveries: []alerting.DeliveryStatus{{Receiver: "team", Integration: "webhook[0]", Attempts: 4, Failures: 2,
				Class: "http 502", LastFailure: at, LastError: "unexpected status code 502"}},
			want: []string{"notify_failures warning team/webhook[0]"},
			fix:  "receiving service's logs",
		},
		{
			name: "a template fails: delivered in the fallback form",
			deliveries: []alerting.DeliveryStatus{{Receiver: "team", Integration: "slack[0]", Attempts: 3, TemplateErrors: 3,
				LastTemplateProblems: []alerting.TemplateProblem{{Receiver: "team", Integration: "slack[0]", Field: "slack_configs[0].title",
					Err: `function "no_such_func" not defined`, Fallback: "Alertmanager's default for the field"}}}},
			want: []string{"notify_failures warning team/slack_configs[0].title"},
			fix:  `fix slack_configs[0].title under receiver "team"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NotifyCheck{Deliveries: fixedDeliveries(tc.deliveries)}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, withoutSeverity(tc.want)...)
			if k := findingKeys(got); !slices.Equal(k, tc.want) {
				t.Fatalf("findings %q, want %q (severities included)", k, tc.want)
			}
			if len(got) > 0 && !strings.Contains(got[0].Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", got[0].Fix, tc.fix)
			}
		})
	}
}

// A real Alertmanager whose webhook points at a closed port: the check
// sees every attempt fail, classed refused.
func TestNotifyCheckOverAlertmanager(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(`route:
  receiver: hook
  group_wait: 10ms
receivers:
  - name: hook
    webhook_configs:
      - url: `+closed+`
`), 0o644); err != nil {
		t.Fatal(err)
	}
	am, err := alerting.New(alerting.Options{ConfigFile: conf, DataDir: dir, ExternalURL: &url.URL{Scheme: "http", Host: "localhost:7070"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = am.Run(context.Background()) }()
	t.Cleanup(func() { am.Stop(); <-done })

	check := NotifyCheck{Deliveries: am}
	got, err := check.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Nothing sent yet, so nothing failed: the closed port is not news.
	expectFindings(t, got)
	if len(got) != 0 {
		t.Fatal("findings before any alert was sent")
	}
	am.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "PaymentsDown"), StartsAt: time.Now()})
	const want = "notify_failures critical hook/webhook[0]"
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := check.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			expectFindings(t, got, withoutSeverity([]string{want})...)
			if k := findingKeys(got); !slices.Equal(k, []string{want}) ||
				!strings.Contains(got[0].Evidence.Summary, "(refused)") || !strings.Contains(got[0].Evidence.Summary, "connection refused") {
				t.Fatalf("findings %q: %+v", k, got[0])
			}
			return
		}
		if time.Now().After(deadline) {
			expectFindings(t, got, withoutSeverity([]string{want})...)
			t.Fatal("no notify_failures finding within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTemplateCheck(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{
			name: "healthy",
			config: `route: {receiver: team}
receivers:
- name: team
  slack_configs:
  - {api_url: "http://127.0.0.1:1/slack", title: '{{ .CommonLabels.alertname }} is {{ .Status }}'}
`,
		},
		{
			name: "a broken title and a broken payload",
			config: `route: {receiver: team}
receivers:
- name: team
  slack_configs:
  - {api_url: "http://127.0.0.1:1/slack", title: '{{ .CommonLabels.alertname | no_such_func }}'}
- name: hooks
  webhook_configs:
  - {url: "http://127.0.0.1:1/hook", payload: {text: '{{ template "no.such.template" . }}'}}
`,
			want: []string{"notify_failures warning hooks/webhook_configs[0].payload[text]", "notify_failures warning team/slack_configs[0].title"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alertmanager.yml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := TemplateCheck{Problems: func() ([]alerting.TemplateProblem, error) {
				return alerting.CheckTemplates(path, &url.URL{Scheme: "http", Host: "localhost:7070"})
			}}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, got, withoutSeverity(tc.want)...)
			if k := findingKeys(got); !slices.Equal(k, tc.want) {
				t.Fatalf("findings %q, want %q (severities included)", k, tc.want)
			}
			for _, f := range got {
				if !strings.Contains(f.Cause, "in its place") || !strings.Contains(f.Evidence.Summary, "fails to render against a sample alert") {
					t.Errorf("finding %+v", f)
				}
			}
		})
	}
	_, err := TemplateCheck{Problems: func() ([]alerting.TemplateProblem, error) { return nil, errors.New("no such file") }}.Run(t.Context())
	if err == nil {
		t.Error("a config that does not load: no error")
	}
}
