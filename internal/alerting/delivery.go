package alerting

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

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
