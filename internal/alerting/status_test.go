package alerting

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

func TestSuppressed(t *testing.T) {
	rcv := newReceiver(t)
	cfg := onceConfig + `
inhibit_rules:
- source_matchers: [severity="page"]
  target_matchers: [severity="ticket"]
  equal: [service]
- name: node-down-mutes-node-alerts
  source_matchers: [alertname="NodeDown"]
  target_matchers: [alertname="NodeDiskFull"]
  equal: [instance]
`
	for _, tc := range []struct {
		name    string
		alerts  []map[string]string
		silence []string // label name and value
		// want: one line per suppressed alert: its alertname, then "silence
		// <createdBy> <comment> <matchers>" or "inhibitor <alertname>
		// <suppressed> <rules>".
		want []string
	}{
		{
			name: "healthy: firing alerts, none silenced or inhibited",
			alerts: []map[string]string{
				{"alertname": "BudgetBurnFast", "severity": "page", "service": "payments"},
				{"alertname": "BudgetBurnSlow", "severity": "ticket", "service": "checkout"},
			},
			silence: []string{"alertname", "Nothing"},
		},
		{
			name: "silence and inhibitions",
			alerts: []map[string]string{
				{"alertname": "DiskFull", "instance": "db1"},
				{"alertname": "CPUHigh", "instance": "db1"},
				{"alertname": "BudgetBurnFast", "severity": "page", "service": "payments"},
				{"alertname": "BudgetBurnSlow", "severity": "ticket", "service": "payments"},
				{"alertname": "NodeDown", "instance": "db2"},
				{"alertname": "NodeDiskFull", "instance": "db2"},
			},
			silence: []string{"alertname", "DiskFull"},
			want: []string{
				"BudgetBurnSlow inhibitor BudgetBurnFast false source_matchers: {severity=\"page\"}, target_matchers: {severity=\"ticket\"}, equal: [service]",
				"DiskFull silence test maintenance {alertname=\"DiskFull\"}",
				"NodeDiskFull inhibitor NodeDown false node-down-mutes-node-alerts",
			},
		},
		{
			name: "the inhibiting alert is silenced too",
			alerts: []map[string]string{
				{"alertname": "NodeDown", "instance": "db3"},
				{"alertname": "NodeDiskFull", "instance": "db3"},
			},
			silence: []string{"alertname", "NodeDown"},
			want: []string{
				"NodeDiskFull inhibitor NodeDown true node-down-mutes-node-alerts",
				"NodeDown silence test maintenance {alertname=\"NodeDown\"}",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			am := start(t, writeConfig(t, dir, cfg, rcv.srv.URL), filepath.Join(dir, "data"))
			id := am.addSilence(t, tc.silence[0], tc.silence[1])
			started := time.Now().Add(-3 * time.Hour)
			for _, ls := range tc.alerts {
				a := firing(ls, nil)
				a.StartsAt = started
				am.Send(a)
			}
			// The inhibitor sees source alerts through the store's
			// subscription: wait until it has them all (and give it the
			// time to wrongly inhibit, when nothing should be).
			if len(tc.want) == 0 {
				time.Sleep(300 * time.Millisecond)
			}
			var got []SuppressedAlert
			deadline := time.Now().Add(5 * time.Second)
			for {
				var err error
				if got, err = am.Suppressed(t.Context()); err != nil {
					t.Fatal(err)
				}
				if len(got) >= len(tc.want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			var lines []string
			for _, s := range got {
				line := string(s.Labels["alertname"])
				for _, sil := range s.Silences {
					line += fmt.Sprintf(" silence %s %s %s", sil.CreatedBy, sil.Comment, sil.Matchers)
					if sil.ID != id || sil.EndsAt.Before(time.Now()) {
						t.Errorf("%s: silence %+v, want %s, active", s.Labels, sil, id)
					}
					// The silence began after the alert: it dates the suppression.
					if !s.Since.Equal(sil.StartsAt) {
						t.Errorf("%s: since %v, want the silence's start %v", s.Labels, s.Since, sil.StartsAt)
					}
				}
				for _, in := range s.Inhibitors {
					line += fmt.Sprintf(" inhibitor %s %v %s", in.Labels["alertname"], in.Suppressed, strings.Join(in.Rules, "; "))
					if len(s.Silences) == 0 && !s.Since.Equal(started) {
						t.Errorf("%s: since %v, want the alerts' start %v", s.Labels, s.Since, started)
					}
				}
				if !s.StartsAt.Equal(started) {
					t.Errorf("%s: starts at %v, want %v", s.Labels, s.StartsAt, started)
				}
				lines = append(lines, line)
			}
			slices.Sort(lines)
			if !slices.Equal(lines, tc.want) {
				t.Errorf("suppressed:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDeliveryStatus(t *testing.T) {
	ok := newReceiver(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	t.Cleanup(unauthorized.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/hook"
	ln.Close()

	dir := t.TempDir()
	cfg := strings.NewReplacer("OK", ok.srv.URL, "FAILING", failing.URL, "UNAUTHORIZED", unauthorized.URL, "CLOSED", closed).Replace(`
route:
  receiver: ok
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 1h
  repeat_interval: 1h
  routes:
  - {matchers: [alertname="ToFailing"], receiver: failing}
  - {matchers: [alertname="ToClosed"], receiver: closed}
  - {matchers: [alertname="ToUnauthorized"], receiver: unauthorized}
  - {matchers: [alertname="ToTemplate"], receiver: template}
receivers:
- name: ok
  webhook_configs: [{url: OK}]
- name: failing
  webhook_configs: [{url: FAILING}]
- name: closed
  webhook_configs: [{url: CLOSED}]
- name: unauthorized
  webhook_configs: [{url: UNAUTHORIZED}]
- name: template
  webhook_configs:
  - url: OK
    payload:
      text: '{{ template "no.such.template" . }}'
`)
	am := start(t, writeConfig(t, dir, cfg, ""), filepath.Join(dir, "data"))
	if got := am.DeliveryStatus(time.Time{}); len(got) != 0 {
		t.Fatalf("before any alert: %+v", got)
	}
	begin := time.Now()
	for _, name := range []string{"ToOK", "ToFailing", "ToClosed", "ToUnauthorized", "ToTemplate"} {
		am.Send(firing(map[string]string{"alertname": name}, nil))
	}

	// want: receiver integration, and whether every attempt failed, the
	// class, a piece of the error and the failed template field.
	type row struct {
		key, class, errPart, field string
		allFailed                  bool
	}
	want := []row{
		{key: "closed webhook[0]", class: ClassRefused, errPart: "connection refused", allFailed: true},
		{key: "failing webhook[0]", class: "http 500", errPart: "upstream exploded", allFailed: true},
		{key: "ok webhook[0]"},
		{key: "template webhook[0]", field: "webhook_configs[0].payload[text]"},
		{key: "unauthorized webhook[0]", class: "http 401", errPart: "bad token", allFailed: true},
	}
	var got []DeliveryStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = am.DeliveryStatus(begin)
		if len(got) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("delivery status %+v, want %d integrations", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if key := g.Receiver + " " + g.Integration; key != w.key {
			t.Errorf("[%d] is %s, want %s", i, key, w.key)
			continue
		}
		if g.Attempts == 0 || (g.Failures == g.Attempts) != w.allFailed || g.Class != w.class || !strings.Contains(g.LastError, w.errPart) {
			t.Errorf("%s: %+v, want all failed %v, class %q, error with %q", w.key, g, w.allFailed, w.class, w.errPart)
		}
		if w.allFailed && (g.LastFailure.Before(begin) || !g.LastSuccess.IsZero()) {
			t.Errorf("%s: last failure %v, last success %v", w.key, g.LastFailure, g.LastSuccess)
		}
		if w.field == "" {
			if g.TemplateErrors != 0 {
				t.Errorf("%s: %d template errors", w.key, g.TemplateErrors)
			}
			continue
		}
		if g.TemplateErrors != 1 || len(g.LastTemplateProblems) != 1 {
			t.Fatalf("%s: template errors %d, problems %+v", w.key, g.TemplateErrors, g.LastTemplateProblems)
		}
		p := g.LastTemplateProblems[0]
		if p.Field != w.field || !strings.Contains(p.Err, "no.such.template") || !strings.Contains(p.Fallback, "standard form") {
			t.Errorf("%s: template problem %+v", w.key, p)
		}
	}
	if later := am.DeliveryStatus(time.Now().Add(time.Minute)); len(later) != 0 {
		t.Errorf("attempts after a time to come: %+v", later)
	}

	// A reload that drops receivers forgets their attempts.
	writeConfig(t, dir, strings.ReplaceAll(onceConfig, "{{URL}}", ok.srv.URL), "")
	if err := am.ApplyConfig(""); err != nil {
		t.Fatal(err)
	}
	for _, s := range am.DeliveryStatus(begin) {
		if s.Receiver != "hook" {
			t.Errorf("after the reload: %+v", s)
		}
	}
}

func TestFailureClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ClassRefused},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "hooks.example", IsNotFound: true}}, ClassDNS},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), ClassTimeout},
		{fmt.Errorf("post: %w", x509.UnknownAuthorityError{}), ClassTLS},
		{notify.NewErrorWithReason(notify.AuthErrorReason, errors.New("unexpected status code 403: forbidden")), "http 403"},
		{notify.NewErrorWithReason(notify.ServerErrorReason, errors.New("gateway said no")), "http 5xx"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &OutboundError{Addr: netip.MustParseAddr("169.254.169.254"), Reason: "link-local metadata"}}, ClassOutbound},
		{errors.New("something else"), ClassOther},
	} {
		if got := FailureClass(tc.err); got != tc.want {
			t.Errorf("FailureClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCheckTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, config, tmplFile string
		// want: receiver integration field, and a piece of the error.
		want []string
	}{
		{
			name: "healthy",
			config: `
templates: [custom.tmpl]
route: {receiver: team}
receivers:
- name: team
  slack_configs:
  - api_url: http://127.0.0.1:1/slack
    title: '{{ template "custom.title" . }}'
    text: '{{ .CommonAnnotations.summary }} on {{ .CommonLabels.instance }}'
  webhook_configs:
  - url: http://127.0.0.1:1/hook
    payload: {text: '{{ .Status }}: {{ .CommonLabels.alertname }}'}
`,
			tmplFile: `{{ define "custom.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}`,
		},
		{
			name: "broken fields",
			config: `
route: {receiver: team}
receivers:
- name: team
  slack_configs:
  - api_url: http://127.0.0.1:1/slack
    title: '{{ .CommonLabels.alertname | no_such_func }}'
    text: 'fine: {{ .CommonAnnotations.summary }}'
  email_configs:
  - to: ops@example.com
    from: vigil@example.com
    smarthost: 127.0.0.1:25
    html: '{{ template "missing.html" . }}'
- name: hooks
  webhook_configs:
  - url: http://127.0.0.1:1/hook
    payload: {text: '{{ template "no.such.template" . }}'}
`,
			want: []string{
				`team email[0] email_configs[0].html missing.html`,
				`team slack[0] slack_configs[0].title no_such_func`,
				`hooks webhook[0] webhook_configs[0].payload[text] no.such.template`,
			},
		},
		{
			name:     "template file does not parse",
			config:   "templates: [custom.tmpl]\nroute: {receiver: team}\nreceivers: [{name: team}]\n",
			tmplFile: `{{ define "x" }}{{ .Status`,
			want:     []string{`  templates custom.tmpl`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.tmplFile != "" {
				if err := os.WriteFile(filepath.Join(dir, "custom.tmpl"), []byte(tc.tmplFile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := CheckTemplates(writeConfig(t, dir, tc.config, ""), testExternalURL)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for i, p := range got {
				if w := ""; i < len(tc.want) {
					w = tc.want[i][strings.LastIndex(tc.want[i], " ")+1:]
					if !strings.Contains(p.Err, w) || p.Fallback == "" {
						t.Errorf("problem %+v: want an error naming %q and a fallback", p, w)
					}
				}
				lines = append(lines, fmt.Sprintf("%s %s %s", p.Receiver, p.Integration, p.Field))
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, w[:strings.LastIndex(w, " ")])
			}
			if !slices.Equal(lines, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	if _, err := CheckTemplates(filepath.Join(t.TempDir(), "missing.yml"), testExternalURL); err == nil {
		t.Error("CheckTemplates of a missing file: no error")
	}
}
