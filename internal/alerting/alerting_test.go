package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
)

// hookReceiver is a webhook endpoint recording Alertmanager's payloads.
type hookReceiver struct {
	srv  *httptest.Server
	mtx  sync.Mutex
	msgs []received
}

type received struct {
	at   time.Time
	msg  webhook.Message
	body []byte
}

func newReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			// The sender gave up mid-request (a reload cancels
			// notifications in flight): not a payload it sent.
			return
		}
		var m webhook.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("webhook payload: %v: %s", err, body)
		}
		r.mtx.Lock()
		r.msgs = append(r.msgs, received{at: time.Now(), msg: m, body: body})
		r.mtx.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) got() []received {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until the receiver has at least n notifications.
func (r *hookReceiver) waitFor(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if got := r.got(); len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("got %d notifications within %v, want %d", len(r.got()), within, n)
	return nil
}

// writeConfig writes an alertmanager.yml, with {{URL}} standing for url.
func writeConfig(t *testing.T, dir, yml, url string) string {
	t.Helper()
	p := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(yml, "{{URL}}", url)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type instance struct {
	*Alertmanager
	reg  *prometheus.Registry
	logs *syncBuffer
	api  *httptest.Server
	done chan struct{}
}

// testExternalURL is the external URL the tests' Alertmanagers run with.
var testExternalURL = &url.URL{Scheme: "http", Host: "vigil.example:7070"}

// start opens an Alertmanager on configFile and dataDir and runs it until
// the test ends.
func start(t *testing.T, configFile, dataDir string) *instance {
	t.Helper()
	in := &instance{reg: prometheus.NewRegistry(), logs: &syncBuffer{}, done: make(chan struct{})}
	am, err := New(Options{
		ConfigFile:  configFile,
		DataDir:     dataDir,
		ExternalURL: testExternalURL,
		Logger:      slog.New(slog.NewTextHandler(in.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registerer:  in.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Alertmanager = am
	go func() {
		defer close(in.done)
		if err := am.Run(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	mux := http.NewServeMux()
	mux.Handle("/api/v2/", am.Handler()) // mounted as on vigil's server
	in.api = httptest.NewServer(mux)
	t.Cleanup(func() {
		in.api.Close()
		am.Stop()
		<-in.done
	})
	return in
}

func firing(lbls, annotations map[string]string) *notifier.Alert {
	return &notifier.Alert{
		Labels:      labels.FromMap(lbls),
		Annotations: labels.FromMap(annotations),
		StartsAt:    time.Now(),
		EndsAt:      time.Now().Add(time.Hour),
	}
}

func (in *instance) addSilence(t *testing.T, name, value string) string {
	t.Helper()
	body := fmt.Sprintf(`{"matchers":[{"name":%q,"value":%q,"isRegex":false,"isEqual":true}],
		"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"maintenance"}`,
		name, value, time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	resp, err := http.Post(in.api.URL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/silences: %s: %s", resp.Status, b)
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.SilenceID == "" {
		t.Fatalf("POST /api/v2/silences: %s (%v)", b, err)
	}
	return out.SilenceID
}

type apiSilence struct {
	ID     string `json:"id"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Comment string `json:"comment"`
}

func (in *instance) silencesByID(t *testing.T) map[string]apiSilence {
	t.Helper()
	resp, err := http.Get(in.api.URL + "/api/v2/silences")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sils []apiSilence
	if err := json.NewDecoder(resp.Body).Decode(&sils); err != nil {
		t.Fatal(err)
	}
	out := map[string]apiSilence{}
	for _, s := range sils {
		out[s.ID] = s
	}
	return out
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, lbls map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := lbls[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

type syncBuffer struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.String()
}

const onceConfig = `
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: {{URL}}
`

func TestOneNotificationPerGroup(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	am := start(t, writeConfig(t, dir, onceConfig, rcv.srv.URL), filepath.Join(dir, "data"))

	am.Send(
		firing(map[string]string{"alertname": "HighLatency", "service": "checkout"}, map[string]string{"summary": "checkout is slow"}),
		firing(map[string]string{"alertname": "HighLatency", "service": "payments"}, map[string]string{"summary": "payments is slow"}),
	)
	// The rules manager's path: rules.Alert through Notify.
	now := time.Now()
	am.Notify(context.Background(), `rate(errors_total[5m]) > 1`, &rules.Alert{
		State:       rules.StateFiring,
		Labels:      labels.FromStrings("alertname", "ErrorsHigh", "service", "payments"),
		Annotations: labels.FromStrings("summary", "payments errors"),
		ActiveAt:    now.Add(-time.Minute),
		FiredAt:     now,
		ValidUntil:  now.Add(4 * time.Minute),
	})

	rcv.waitFor(t, 2, 5*time.Second)
	time.Sleep(500 * time.Millisecond) // nothing more may come: group_interval is 1h
	got := rcv.got()
	if len(got) != 2 {
		t.Fatalf("got %d notifications, want one per group (2)", len(got))
	}
	byGroup := map[string]webhook.Message{}
	for _, r := range got {
		byGroup[r.msg.GroupLabels["alertname"]] = r.msg
	}

	lat := byGroup["HighLatency"]
	if lat.Data == nil || len(lat.Alerts) != 2 || lat.Status != "firing" || lat.Receiver != "hook" || lat.Version != "4" {
		t.Fatalf("HighLatency group: %+v", lat)
	}
	// Notifications link to vigil ({{ .ExternalURL }} in templates).
	if lat.ExternalURL != testExternalURL.String() {
		t.Errorf("notification externalURL %q, want %q", lat.ExternalURL, testExternalURL)
	}
	summaries := map[string]string{}
	for _, a := range lat.Alerts {
		summaries[a.Labels["service"]] = a.Annotations["summary"]
	}
	if summaries["checkout"] != "checkout is slow" || summaries["payments"] != "payments is slow" {
		t.Errorf("HighLatency annotations: %v", summaries)
	}

	errs := byGroup["ErrorsHigh"]
	if errs.Data == nil || len(errs.Alerts) != 1 {
		t.Fatalf("ErrorsHigh group: %+v", errs)
	}
	a := errs.Alerts[0]
	if a.Labels["service"] != "payments" || a.Annotations["summary"] != "payments errors" || a.Status != "firing" {
		t.Errorf("ErrorsHigh alert: %+v", a)
	}
	// The page of vigil's UI that runs the expression, on vigil's external
	// URL: not Prometheus's /graph, which vigil does not serve.
	wantURL := "http://vigil.example:7070/explore?query=rate%28errors_total%5B5m%5D%29+%3E+1"
	if a.GeneratorURL != wantURL {
		t.Errorf("generator URL %q, want %q", a.GeneratorURL, wantURL)
	}
	if !a.StartsAt.Equal(now) {
		t.Errorf("StartsAt %v, want FiredAt %v", a.StartsAt, now)
	}
	if v := metricValue(t, am.reg, "vigil_alertmanager_template_errors_total", nil); v != 0 {
		t.Errorf("template errors %v, want 0", v)
	}
}

func TestSilenceSuppresses(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	am := start(t, writeConfig(t, dir, onceConfig, rcv.srv.URL), filepath.Join(dir, "data"))

	am.addSilence(t, "alertname", "DiskFull")
	am.Send(
		firing(map[string]string{"alertname": "DiskFull", "instance": "db1"}, nil),
		firing(map[string]string{"alertname": "CPUHigh", "instance": "db1"}, nil),
	)
	rcv.waitFor(t, 1, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	got := rcv.got()
	if len(got) != 1 || got[0].msg.GroupLabels["alertname"] != "CPUHigh" {
		t.Fatalf("got %d notifications (%v), want only CPUHigh", len(got), groups(got))
	}
}

func TestInhibitRuleSuppresses(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfg := onceConfig + `
inhibit_rules:
- source_matchers: [severity="page"]
  target_matchers: [severity="ticket"]
  equal: [service]
`
	am := start(t, writeConfig(t, dir, cfg, rcv.srv.URL), filepath.Join(dir, "data"))
	am.Send(
		firing(map[string]string{"alertname": "BudgetBurnFast", "severity": "page", "service": "payments"}, nil),
		firing(map[string]string{"alertname": "BudgetBurnSlow", "severity": "ticket", "service": "payments"}, nil),
		firing(map[string]string{"alertname": "BudgetBurnSlowOther", "severity": "ticket", "service": "checkout"}, nil),
	)
	rcv.waitFor(t, 2, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	got := groups(rcv.got())
	slices.Sort(got)
	if want := []string{"BudgetBurnFast", "BudgetBurnSlowOther"}; !slices.Equal(got, want) {
		t.Fatalf("notified groups %v, want %v (the payments ticket is inhibited)", got, want)
	}
}

func groups(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.msg.GroupLabels["alertname"])
	}
	return out
}

func TestRepeatInterval(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfg := `
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 100ms
  repeat_interval: 800ms
receivers:
- name: hook
  webhook_configs:
  - url: {{URL}}
`
	am := start(t, writeConfig(t, dir, cfg, rcv.srv.URL), filepath.Join(dir, "data"))
	am.Send(firing(map[string]string{"alertname": "Stuck"}, nil))

	got := rcv.waitFor(t, 2, 5*time.Second)
	if gap := got[1].at.Sub(got[0].at); gap < 800*time.Millisecond {
		t.Fatalf("repeated after %v, before repeat_interval 800ms (group_interval 100ms)", gap)
	}
	// Nothing changed between them: a repeat, not an update.
	if len(got[1].msg.Alerts) != 1 || got[1].msg.Alerts[0].Labels["alertname"] != "Stuck" {
		t.Errorf("repeat: %+v", got[1].msg)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, onceConfig, rcv.srv.URL)
	data := filepath.Join(dir, "data")

	am := start(t, cfgFile, data)
	id := am.addSilence(t, "alertname", "DiskFull")
	am.Send(firing(map[string]string{"alertname": "CPUHigh"}, nil))
	rcv.waitFor(t, 1, 5*time.Second)
	// The receiver counts the request when it arrives; the log entry is
	// written once the sender has read the answer. A stop in between is
	// a notification delivered but not confirmed, which is sent again
	// after a restart (at least once): not what this test is about.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := am.nflog.Snapshot(io.Discard) // bytes of all entries
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification log entry 5s after delivery: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	am.Stop()

	am2 := start(t, cfgFile, data)
	if s, ok := am2.silencesByID(t)[id]; !ok || s.Status.State != "active" || s.Comment != "maintenance" {
		t.Fatalf("silence %s after restart: %+v (found %v)", id, s, ok)
	}
	// The notification log came back too: the rules manager re-sending
	// the still-firing alert is not notified again within repeat_interval.
	am2.Send(firing(map[string]string{"alertname": "CPUHigh"}, nil))
	am2.Send(firing(map[string]string{"alertname": "DiskFull"}, nil))
	time.Sleep(500 * time.Millisecond)
	if got := rcv.got(); len(got) != 1 {
		t.Fatalf("after restart got %d notifications in all (%v), want the first one only", len(got), groups(got))
	}
}

// TestSilenceSurvivesCrash creates a silence and, without stopping that
// instance (as after kill -9: no shutdown snapshot), opens another on the
// same data directory.
func TestSilenceSurvivesCrash(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, onceConfig, rcv.srv.URL)
	data := filepath.Join(dir, "data")

	crashed := start(t, cfgFile, data)
	id := crashed.addSilence(t, "alertname", "DiskFull")

	// Expire one too: the expiry must be as durable as the creation.
	expired := crashed.addSilence(t, "alertname", "Other")
	req, _ := http.NewRequest(http.MethodDelete, crashed.api.URL+"/api/v2/silence/"+expired, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE silence: %v %v", resp.Status, err)
	}
	resp.Body.Close()

	after := start(t, cfgFile, data)
	sils := after.silencesByID(t)
	if s, ok := sils[id]; !ok || s.Status.State != "active" {
		t.Fatalf("silence %s after crash: %+v (found %v)", id, s, ok)
	}
	if s := sils[expired]; s.Status.State != "expired" {
		t.Fatalf("expired silence %s after crash: %+v", expired, s)
	}
}

func TestTemplateFailureFallsBack(t *testing.T) {
	hook := newReceiver(t)
	dir := t.TempDir()
	cfg := `
route:
  receiver: team
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: team
  webhook_configs:
  - url: {{URL}}
    payload:
      text: '{{ template "no.such.template" . }}'
      status: '{{ .Status }}'
`
	am := start(t, writeConfig(t, dir, cfg, hook.srv.URL), filepath.Join(dir, "data"))
	am.Send(firing(map[string]string{"alertname": "PaymentsDown"}, map[string]string{"summary": "payments down"}))

	// The custom payload fails to render: the webhook gets Alertmanager's
	// standard payload instead, exactly once.
	hook.waitFor(t, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := hook.got()
	if len(got) != 1 {
		t.Fatalf("got %d notifications, want 1", len(got))
	}
	if m := got[0].msg; m.Data == nil || m.Version != "4" || len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != "PaymentsDown" {
		t.Fatalf("fallback webhook payload: %s", got[0].body)
	}
	if v := metricValue(t, am.reg, "vigil_alertmanager_template_errors_total", map[string]string{"receiver": "team", "integration": "webhook"}); v != 1 {
		t.Errorf("vigil_alertmanager_template_errors_total = %v, want 1", v)
	}
	logs := am.logs.String()
	if !strings.Contains(logs, "notification template failed to render") || !strings.Contains(logs, "no.such.template") {
		t.Errorf("no log line for the template failure:\n%s", logs)
	}
	// Delivered: Alertmanager counts no failed notification.
	if v := metricValue(t, am.reg, "alertmanager_notifications_failed_total", map[string]string{"receiver": "team"}); v != 0 {
		t.Errorf("alertmanager_notifications_failed_total = %v, want 0", v)
	}
}

type slackRequest struct {
	Channel     string `json:"channel"`
	Attachments []struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"attachments"`
}

type slackServer struct {
	srv  *httptest.Server
	msgs chan slackRequest
}

func newSlack(t *testing.T) *slackServer {
	s := &slackServer{msgs: make(chan slackRequest, 10)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m slackRequest
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("slack payload: %v", err)
		}
		s.msgs <- m
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackServer) wait(t *testing.T) slackRequest {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no slack message")
		return slackRequest{}
	}
}

func TestTemplateFailureFallsBackSlack(t *testing.T) {
	slack := newSlack(t)
	dir := t.TempDir()
	cfg := `
route:
  receiver: team
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: team
  slack_configs:
  - api_url: SLACK
    channel: '#payments'
    title: '{{ .CommonLabels.alertname | no_such_func }}'
    text: 'custom: {{ .CommonAnnotations.summary }}'
`
	cfg = strings.ReplaceAll(cfg, "SLACK", slack.srv.URL)
	am := start(t, writeConfig(t, dir, cfg, ""), filepath.Join(dir, "data"))
	am.Send(firing(map[string]string{"alertname": "PaymentsDown"}, map[string]string{"summary": "payments down"}))

	msg := slack.wait(t)
	if msg.Channel != "#payments" || len(msg.Attachments) != 1 {
		t.Fatalf("slack message: %+v\n%s", msg, am.logs)
	}
	att := msg.Attachments[0]
	// The broken title falls back to Alertmanager's default; the fields
	// that render are kept.
	if !strings.HasPrefix(att.Title, "[FIRING:1] PaymentsDown") {
		t.Errorf("title %q, want the default slack title", att.Title)
	}
	if att.Text != "custom: payments down" {
		t.Errorf("text %q, want the configured one", att.Text)
	}
	if v := metricValue(t, am.reg, "vigil_alertmanager_template_errors_total", map[string]string{"receiver": "team", "integration": "slack"}); v != 1 {
		t.Errorf("template errors for slack: %v, want 1", v)
	}
}

func TestApplyConfig(t *testing.T) {
	first := newReceiver(t)
	second := newReceiver(t)
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, onceConfig, first.srv.URL)
	am := start(t, cfgFile, filepath.Join(dir, "data"))

	if err := am.ApplyConfig("testdata/bad_unknown_receiver.yml"); err == nil {
		t.Fatal("ApplyConfig accepted a route to an undefined receiver")
	}
	if v := metricValue(t, am.reg, "vigil_alertmanager_config_last_reload_successful", nil); v != 0 {
		t.Errorf("last_reload_successful = %v after a failed reload", v)
	}
	am.Send(firing(map[string]string{"alertname": "Before"}, nil))
	first.waitFor(t, 1, 5*time.Second) // the old config still routes

	writeConfig(t, dir, onceConfig, second.srv.URL)
	if err := am.ApplyConfig(""); err != nil {
		t.Fatal(err)
	}
	am.Send(firing(map[string]string{"alertname": "After"}, nil))
	// Before is still firing, so the new receiver may be told of it too,
	// and first: wait for After itself.
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(groups(second.got()), "After") {
		if time.Now().After(deadline) {
			t.Fatalf("after reload the new receiver got %v", groups(second.got()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The v2 endpoints amtool, Grafana and vigil's UI use answer on the mount.
func TestAPIEndpoints(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	am := start(t, writeConfig(t, dir, onceConfig, rcv.srv.URL), filepath.Join(dir, "data"))

	post := `[{"labels":{"alertname":"FromAPI","service":"shop"},"annotations":{"summary":"posted"}}]`
	resp, err := http.Post(am.api.URL+"/api/v2/alerts", "application/json", strings.NewReader(post))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	id := am.addSilence(t, "alertname", "Nothing")

	for path, want := range map[string]string{
		"/api/v2/alerts":        `"alertname":"FromAPI"`,
		"/api/v2/alerts/groups": `"receiver":{"name":"hook"}`,
		"/api/v2/silences":      id,
		"/api/v2/silence/" + id: `"comment":"maintenance"`,
		"/api/v2/status":        `"config":{"original":`,
		"/api/v2/receivers":     `"name":"hook"`,
	} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get(am.api.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %s\n%s\nwant it to contain %s", path, resp.Status, b, want)
			}
			time.Sleep(20 * time.Millisecond) // groups appear once dispatched
		}
	}
	got := rcv.waitFor(t, 1, 5*time.Second)
	if a := got[0].msg.Alerts[0]; a.Labels["alertname"] != "FromAPI" || a.Annotations["summary"] != "posted" {
		t.Fatalf("alert posted to the API was notified as %+v", a)
	}
}

// Reloading while the API lists alerts must not deadlock: the API computes
// alert status while holding its lock, and a reload takes that lock.
func TestApplyConfigDuringAPIReads(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	am := start(t, writeConfig(t, dir, onceConfig, rcv.srv.URL), filepath.Join(dir, "data"))
	for i := range 20 {
		am.Send(firing(map[string]string{"alertname": "Load", "n": fmt.Sprint(i)}, nil))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 30 {
			if err := am.ApplyConfig(""); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Second):
			t.Fatal("ApplyConfig and GET /api/v2/alerts deadlocked")
		default:
		}
		resp, err := http.Get(am.api.URL + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// Without the server's external URL every link would be wrong: New and
// the template check refuse rather than make one up.
func TestExternalURLRequired(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, "route: {receiver: none}\nreceivers: [{name: none}]\n", "")
	func() {
		defer func() {
			if r := recover(); r != ErrNoExternalURL {
				t.Errorf("New without ExternalURL panicked with %v, want ErrNoExternalURL", r)
			}
		}()
		_, _ = New(Options{ConfigFile: conf, DataDir: dir})
	}()
	if _, err := CheckTemplates(conf, nil); !errors.Is(err, ErrNoExternalURL) {
		t.Errorf("CheckTemplates without an external URL: %v, want ErrNoExternalURL", err)
	}
	// A trailing slash does not double the generator URL's.
	slash := &url.URL{Scheme: "https", Host: "vigil.example", Path: "/vigil/"}
	if got, want := GeneratorURL(slash, "up"), "https://vigil.example/vigil/explore?query=up"; got != want {
		t.Errorf("GeneratorURL = %s, want %s", got, want)
	}
}
