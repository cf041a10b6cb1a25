package rules

import (
	"testing"
	"time"

	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
)

// A follower's gate is closed: its rules evaluate and its alerts fire (its
// own ALERTS), but nothing reaches the Alertmanager. Opened (the node now
// leads), the alerts already firing are sent at the next evaluation, not a
// resend delay later, and closed again nothing more passes.
func TestNotifyGate(t *testing.T) {
	n := &notified{}
	gate := NewNotifyGate(n.notify)
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	m, err := New(Options{Appendable: st, Queryable: st, Notify: gate.Notify, Dir: t.TempDir(), Engine: testEngine(), ExternalURL: testURL})
	if err != nil {
		t.Fatal(err)
	}
	go m.Run()
	t.Cleanup(m.Stop)
	appendErrors(t, st, "checkout", 2)
	if err := m.Apply(Config{Interval: time.Second, Files: []string{"testdata/shop.rules.yml"}}); err != nil {
		t.Fatal(err)
	}

	firing := func() int {
		c := 0
		for _, r := range m.AlertingRules() {
			r.ForEachActiveAlert(func(a *promrules.Alert) {
				if a.State == promrules.StateFiring {
					c++
				}
			})
		}
		return c
	}
	waitUntil(t, "HighErrorRate firing on the follower", 10*time.Second, func() bool { return firing() > 0 })
	time.Sleep(500 * time.Millisecond) // five evaluations of the 100ms group, each one sending if the gate let it
	if got := len(n.firing("HighErrorRate")); got != 0 {
		t.Fatalf("%d alerts passed a closed gate", got)
	}

	opened := time.Now()
	gate.Open(m.AlertingRules())
	waitUntil(t, "the firing alert sent once the gate opened", 5*time.Second, func() bool { return len(n.firing("HighErrorRate")) > 0 })
	// Without the reset in Open it would wait out DefaultResendDelay.
	if took := time.Since(opened); took >= DefaultResendDelay/2 {
		t.Errorf("sent %s after the gate opened", took)
	}

	gate.Close()
	time.Sleep(200 * time.Millisecond) // an evaluation under way when it closed may still send
	before := len(n.firing("HighErrorRate"))
	// Due again at the next evaluation, as after Open: only the gate holds it back.
	for _, r := range m.AlertingRules() {
		r.ForEachActiveAlert(func(a *promrules.Alert) { a.LastSentAt = time.Time{} })
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(n.firing("HighErrorRate")); got != before {
		t.Errorf("%d alerts sent through a closed gate", got-before)
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
