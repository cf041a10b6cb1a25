package alerting

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// SuppressedAlert is a firing alert that notifies nobody because silences
// or an inhibition cover it.
type SuppressedAlert struct {
	Labels   model.LabelSet
	StartsAt time.Time
	// Since is when the suppression began: the later of the alert's start
	// and the start of the earliest covering silence or inhibiting alert.
	Since time.Time
	// Silences cover the alert; Inhibitors inhibit it.
	Silences   []Silence
	Inhibitors []Inhibitor
}

// Silence is an active silence, as the silences page and amtool show it.
type Silence struct {
	ID        string
	CreatedBy string
	Comment   string
	// Matchers are written as in amtool: {alertname="DiskFull"}.
	Matchers         string
	StartsAt, EndsAt time.Time
}

// Inhibitor is a firing alert that inhibits another.
type Inhibitor struct {
	Fingerprint string
	// Labels are empty when the alert has gone since.
	Labels   model.LabelSet
	StartsAt time.Time
	// Suppressed is true when the inhibiting alert is silenced or inhibited
	// itself: then nobody hears of either alert.
	Suppressed bool
	// Rules are the inhibit_rules that match the pair: their name, or how
	// they are written when they have none.
	Rules []string
}

// Suppressed returns the firing alerts that silences or inhibit rules
// currently mute, as the API predicts their status: with a fresh marker
// per alert, so nothing leaks between aggregation groups.
func (am *Alertmanager) Suppressed(ctx context.Context) ([]SuppressedAlert, error) {
	firing, err := am.firing()
	if err != nil {
		return nil, err
	}
	byFP := make(map[string]*alert.Alert, len(firing))
	for _, a := range firing {
		byFP[a.Fingerprint().String()] = a
	}
	am.mtx.Lock()
	conf := am.conf
	am.mtx.Unlock()
	var rules []*inhibit.InhibitRule
	if conf != nil {
		for _, r := range conf.InhibitRules {
			rules = append(rules, inhibit.NewInhibitRule(r))
		}
	}

	var out []SuppressedAlert
	for _, a := range firing {
		st := am.status(ctx, a.Labels)
		if st.State != alert.AlertStateSuppressed {
			continue
		}
		s := SuppressedAlert{Labels: a.Labels, StartsAt: a.StartsAt}
		var covered []time.Time // when each silence or inhibitor began
		if len(st.SilencedBy) > 0 {
			sils, _, err := am.silences.Query(ctx, silence.QIDs(st.SilencedBy...))
			if err != nil {
				return nil, fmt.Errorf("alerting: silences of %s: %w", a.Labels, err)
			}
			for _, sil := range sils {
				s.Silences = append(s.Silences, silenceOf(sil))
				covered = append(covered, sil.StartsAt.AsTime())
			}
		}
		for _, fp := range st.InhibitedBy {
			in := Inhibitor{Fingerprint: fp}
			src := byFP[fp]
			if src == nil {
				if f, err := model.ParseFingerprint(fp); err == nil {
					src, _ = am.alerts.Get(f)
				}
			}
			if src != nil {
				in.Labels = src.Labels
				in.StartsAt = src.StartsAt
				in.Suppressed = am.status(ctx, src.Labels).State == alert.AlertStateSuppressed
				in.Rules = matchingRules(rules, src.Labels, a.Labels)
				covered = append(covered, src.StartsAt)
			}
			s.Inhibitors = append(s.Inhibitors, in)
		}
		s.Since = a.StartsAt
		if len(covered) > 0 {
			if first := slices.MinFunc(covered, time.Time.Compare); first.After(s.Since) {
				s.Since = first
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y SuppressedAlert) int {
		return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.Labels.String(), y.Labels.String()))
	})
	return out, nil
}

// firing lists the alerts in the store that have not resolved.
func (am *Alertmanager) firing() ([]*alert.Alert, error) {
	it := am.alerts.GetPending()
	defer it.Close()
	var out []*alert.Alert
	for pa := range it.Next() {
		if pa != nil && pa.Data != nil && !pa.Data.Resolved() {
			out = append(out, pa.Data)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("alerting: list alerts: %w", err)
	}
	return out, nil
}

// status predicts an alert's status now, as the v2 API does.
func (am *Alertmanager) status(ctx context.Context, lset model.LabelSet) alert.AlertStatus {
	m := marker.NewAlertMarker()
	am.setAlertStatus(marker.WithContext(ctx, m), lset)
	return m.Status(lset.Fingerprint())
}

var matcherOps = map[silencepb.Matcher_Type]string{
	silencepb.Matcher_EQUAL: "=", silencepb.Matcher_NOT_EQUAL: "!=",
	silencepb.Matcher_REGEXP: "=~", silencepb.Matcher_NOT_REGEXP: "!~",
}

func silenceOf(sil *silencepb.Silence) Silence {
	// A silence matches if any of its matcher sets does; older silences
	// have a single list of matchers instead.
	sets := [][]*silencepb.Matcher{sil.Matchers}
	if len(sil.MatcherSets) > 0 {
		sets = sets[:0]
		for _, ms := range sil.MatcherSets {
			sets = append(sets, ms.Matchers)
		}
	}
	written := make([]string, 0, len(sets))
	for _, set := range sets {
		ms := make([]string, 0, len(set))
		for _, m := range set {
			ms = append(ms, fmt.Sprintf("%s%s%q", m.Name, matcherOps[m.Type], m.Pattern))
		}
		written = append(written, "{"+strings.Join(ms, ", ")+"}")
	}
	return Silence{
		ID: sil.Id, CreatedBy: sil.CreatedBy, Comment: sil.Comment,
		Matchers: strings.Join(written, " or "),
		StartsAt: sil.StartsAt.AsTime(), EndsAt: sil.EndsAt.AsTime(),
	}
}

// matchingRules names the inhibit rules under which source inhibits target.
func matchingRules(rules []*inhibit.InhibitRule, source, target model.LabelSet) []string {
	var out []string
	for _, r := range rules {
		if !r.SourceMatchers.Matches(source) || !r.TargetMatchers.Matches(target) {
			continue
		}
		equal := make([]string, 0, len(r.Equal))
		ok := true
		for n := range r.Equal {
			equal = append(equal, string(n))
			ok = ok && source[n] == target[n]
		}
		if !ok {
			continue
		}
		if r.Name != "" {
			out = append(out, r.Name)
			continue
		}
		slices.Sort(equal)
		out = append(out, fmt.Sprintf("source_matchers: %s, target_matchers: %s, equal: [%s]",
			r.SourceMatchers, r.TargetMatchers, strings.Join(equal, ", ")))
	}
	return out
}

// DeliveryStatus is how one integration of a receiver has delivered
// notifications over a time range.
type DeliveryStatus struct {
	Receiver string
	// Integration is Alertmanager's name for it: the kind and its index
	// among the receiver's configs of that kind (webhook[0]).
	Integration string
	// Attempts counts every try, retries included; Failures those that
	// failed.
	Attempts, Failures int
	LastSuccess        time.Time
	LastFailure        time.Time
	// LastError is the last failure's error, with URLs redacted as
	// Alertmanager logs them; Class sorts it (see FailureClass).
	LastError string
	Class     string
	// TemplateErrors counts notifications whose templates failed and were
	// sent in the fallback form; LastTemplateProblems are the fields that
	// failed the last time.
	TemplateErrors       int
	LastTemplateProblems []TemplateProblem
}

// TemplateProblem is a templated field of a receiver that fails to render.
type TemplateProblem struct {
	// Receiver and Integration are empty when the template files
	// themselves do not load.
	Receiver    string
	Integration string
	// Field is the field's path in alertmanager.yml: slack_configs[0].title.
	Field string
	Err   string
	// Fallback is what vigil sends instead.
	Fallback string
}

// Error classes of failed deliveries; an HTTP status is classed "http " +
// the code (http 401, http 500).
const (
	ClassRefused = "refused"
	ClassDNS     = "dns"
	ClassTimeout = "timeout"
	ClassTLS     = "tls"
	// ClassOutbound: vigil itself refused to connect (a link-local or cloud
	// metadata address; see outbound.go).
	ClassOutbound = "outbound refused"
	ClassOther    = "other"
)

var statusCodeRE = regexp.MustCompile(`unexpected status code (\d{3})`)

// FailureClass sorts a delivery error into the class that decides its fix.
func FailureClass(err error) string {
	msg := err.Error()
	var dnsErr *net.DNSError
	var unknownAuthority x509.UnknownAuthorityError
	var certInvalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	var reason *notify.ErrorWithReason
	switch {
	case errors.Is(err, ErrOutboundRefused):
		return ClassOutbound
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return ClassRefused
	case errors.As(err, &unknownAuthority) || errors.As(err, &certInvalid) || errors.As(err, &hostErr) ||
		errors.As(err, &recordErr) || strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:"):
		return ClassTLS
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "timeout"):
		return ClassTimeout
	}
	if m := statusCodeRE.FindStringSubmatch(msg); m != nil {
		return "http " + m[1]
	}
	if errors.As(err, &reason) {
		switch reason.Reason {
		case notify.AuthErrorReason:
			return "http 401"
		case notify.RateLimitedReason:
			return "http 429"
		case notify.ClientErrorReason:
			return "http 4xx"
		case notify.ServerErrorReason:
			return "http 5xx"
		case notify.ContextDeadlineExceededReason:
			return ClassTimeout
		}
	}
	return ClassOther
}

// DeliveryStatus returns every integration that tried to deliver since
// the given time, by receiver and integration.
func (am *Alertmanager) DeliveryStatus(since time.Time) []DeliveryStatus {
	return am.deliveries.status(since)
}

// deliveryLog keeps the recent delivery attempts of every integration.
type deliveryLog struct {
	now     func() time.Time
	mu      sync.Mutex
	records map[deliveryKey]*deliveryRecord
}

type deliveryKey struct{ receiver, integration string }

type deliveryRecord struct {
	events       []deliveryEvent // oldest first
	lastSuccess  time.Time
	lastFailure  time.Time
	lastError    string
	lastClass    string
	lastTemplate []TemplateProblem
}

type deliveryEvent struct {
	at   time.Time
	kind eventKind
}

type eventKind uint8

const (
	delivered eventKind = iota
	failed
	templateFailed
)

// Bounds of a record: enough for any window the doctor looks at, small
// enough that a receiver retrying for days costs little.
const (
	maxDeliveryEvents = 4096
	maxDeliveryAge    = 24 * time.Hour
	maxErrorLen       = 512
)

func newDeliveryLog(now func() time.Time) *deliveryLog {
	return &deliveryLog{now: now, records: map[deliveryKey]*deliveryRecord{}}
}

func (l *deliveryLog) record(k deliveryKey) *deliveryRecord {
	r := l.records[k]
	if r == nil {
		r = &deliveryRecord{}
		l.records[k] = r
	}
	return r
}

func (r *deliveryRecord) add(at time.Time, kind eventKind) {
	r.events = append(r.events, deliveryEvent{at, kind})
	drop := max(0, len(r.events)-maxDeliveryEvents)
	for drop < len(r.events) && at.Sub(r.events[drop].at) > maxDeliveryAge {
		drop++
	}
	if drop > 0 {
		r.events = slices.Delete(r.events, 0, drop)
	}
}

// attempt notes one try of an integration; err is nil when it delivered.
func (l *deliveryLog) attempt(k deliveryKey, err error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(k)
	if err == nil {
		r.add(now, delivered)
		r.lastSuccess = now
		return
	}
	r.add(now, failed)
	r.lastFailure = now
	r.lastError = truncate(err.Error(), maxErrorLen)
	r.lastClass = FailureClass(err)
}

// templateFailed notes a notification sent in the fallback form.
func (l *deliveryLog) templateFailed(k deliveryKey, problems []TemplateProblem) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(k)
	r.add(now, templateFailed)
	for i := range problems {
		problems[i].Err = truncate(problems[i].Err, maxErrorLen)
	}
	r.lastTemplate = problems
}

// retain forgets the integrations a new configuration no longer has.
func (l *deliveryLog) retain(receivers map[string][]notify.Integration) {
	keep := map[deliveryKey]bool{}
	for name, ins := range receivers {
		for i := range ins {
			keep[deliveryKey{name, ins[i].String()}] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.records {
		if !keep[k] {
			delete(l.records, k)
		}
	}
}

func (l *deliveryLog) status(since time.Time) []DeliveryStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []DeliveryStatus
	for k, r := range l.records {
		s := DeliveryStatus{Receiver: k.receiver, Integration: k.integration}
		for _, e := range r.events {
			if e.at.Before(since) {
				continue
			}
			switch e.kind {
			case delivered:
				s.Attempts++
			case failed:
				s.Attempts++
				s.Failures++
			case templateFailed:
				s.TemplateErrors++
			}
		}
		if s.Attempts == 0 && s.TemplateErrors == 0 {
			continue
		}
		s.LastSuccess, s.LastFailure = r.lastSuccess, r.lastFailure
		if s.Failures > 0 {
			s.LastError, s.Class = r.lastError, r.lastClass
		}
		if s.TemplateErrors > 0 {
			s.LastTemplateProblems = slices.Clone(r.lastTemplate)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b DeliveryStatus) int {
		return cmp.Or(cmp.Compare(a.Receiver, b.Receiver), cmp.Compare(a.Integration, b.Integration))
	})
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// CheckTemplates loads an alertmanager.yml and renders every templated
// field of every receiver against a sample alert, as the template fallback
// renders them before each notification, so that broken templates show
// before an alert needs them. Templates that fail only on some alerts'
// data (an index out of range) cannot be found this way.
//
// A config that does not load is an error; template files that do not
// parse are a problem without receiver, since vigil refuses to apply them.
// ext is the external URL the server would run with: templates render the
// links they would send.
func CheckTemplates(configPath string, ext *url.URL) ([]TemplateProblem, error) {
	if ext == nil {
		return nil, ErrNoExternalURL
	}
	conf, err := config.LoadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", configPath, err)
	}
	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return []TemplateProblem{{Field: "templates", Err: err.Error(),
			Fallback: "none: vigil does not apply a configuration whose template files fail to parse"}}, nil
	}
	tmpl.ExternalURL = externalURL(ext)
	var out []TemplateProblem
	for i := range conf.Receivers {
		rcv := &conf.Receivers[i]
		data := sampleData(tmpl, rcv.Name, ext)
		configs := integrationConfigs(rcv)
		keys := make([]integrationKey, 0, len(configs))
		for k := range configs {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b integrationKey) int { return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.idx, b.idx)) })
		for _, k := range keys {
			c := configs[k]
			p := patcher{tmpl: tmpl, data: data}
			p.walk(c.ptr, defaultsFor(c.ptr.Type()), c.path, 0)
			out = append(out, p.problems(rcv.Name, fmt.Sprintf("%s[%d]", k.name, k.idx))...)
		}
	}
	return out, nil
}

// sampleData is the template data of a notification of one firing alert
// with the labels and annotations rules usually set.
func sampleData(tmpl *template.Template, receiver string, ext *url.URL) *template.Data {
	now := time.Now()
	a := &alert.Alert{Alert: model.Alert{
		Labels: model.LabelSet{
			"alertname": "ExampleAlert", "severity": "critical", "service": "example",
			"job": "example", "instance": "example:8080",
		},
		Annotations: model.LabelSet{
			"summary": "example summary", "description": "example description",
			"runbook_url": "http://localhost/runbook",
		},
		StartsAt:     now.Add(-5 * time.Minute),
		EndsAt:       now.Add(5 * time.Minute),
		GeneratorURL: GeneratorURL(ext, `sum(rate(http_requests_total{code=~"5.."}[5m])) > 1`),
	}, UpdatedAt: now}
	data := tmpl.Data(receiver, model.LabelSet{"alertname": "ExampleAlert"}, nil, notify.ReasonFirstNotification.String(), a)
	template.MarkRouteLabelsRendered(data)
	return data
}
