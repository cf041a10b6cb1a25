package rules

import (
	"context"
	"sync/atomic"
	"time"

	promrules "github.com/prometheus/prometheus/rules"
)

// NotifyGate lets a node evaluate alerting rules without sending their
// alerts: a cluster's follower keeps its own ALERTS series and its alerts'
// "for" progress on its own data, and hands its alerts to the Alertmanager
// only once it leads. The gate only spares a follower's Alertmanager
// alerts it would not send anyway: what decides whether a notification
// goes out is the Alertmanager's leader fence, which stays in force for
// everything that passes here. Safe for concurrent use.
type NotifyGate struct {
	next    promrules.NotifyFunc
	leading atomic.Bool
}

// NewNotifyGate returns a closed gate in front of next.
func NewNotifyGate(next promrules.NotifyFunc) *NotifyGate {
	return &NotifyGate{next: next}
}

// Notify is the NotifyFunc to build the rules manager with: it passes
// alerts on while the gate is open and drops them while it is closed.
func (g *NotifyGate) Notify(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if g.leading.Load() {
		g.next(ctx, expr, alerts...)
	}
}

// Open lets alerts through from now on, and has every active alert of
// rules sent again at its rule's next evaluation. A closed gate drops
// alerts, but the rules manager counts them as sent and would send a
// firing alert again only after its resend delay (a minute): without the
// reset a new leader's Alertmanager would lack the alerts that were
// already firing for up to that long.
func (g *NotifyGate) Open(rules []*promrules.AlertingRule) {
	// Open before the reset: an evaluation that marks an alert sent after
	// the reset sees the gate open and sends it, one that marked it before
	// is undone by the reset.
	g.leading.Store(true)
	for _, r := range rules {
		r.ForEachActiveAlert(func(a *promrules.Alert) { a.LastSentAt = time.Time{} })
	}
}

// Close drops alerts from now on.
func (g *NotifyGate) Close() { g.leading.Store(false) }

// IsOpen reports whether alerts pass.
func (g *NotifyGate) IsOpen() bool { return g.leading.Load() }
