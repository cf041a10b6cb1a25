package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/slo"
)

var (
	item = configcentre.Key{Namespace: "shop", Group: "payment", Key: "settings"}
	t0   = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
)

// machineProposer applies commands to a Machine as configcentre.Local
// does, without the log file.
type machineProposer struct{ m *configcentre.Machine }

func (p machineProposer) Propose(_ context.Context, c configcentre.Command) (configcentre.Result, error) {
	return p.m.ApplyCommand(c)
}

// withGray is a machine holding item, formal version 1 and, with guard
// not nil, a gray (version 2) guarded by it.
func withGray(t *testing.T, guard string) *configcentre.Machine {
	t.Helper()
	m := configcentre.NewMachine()
	cmds := []configcentre.Command{{Op: configcentre.OpPut, Item: item, Content: "timeout: 2s\n", ContentType: configcentre.TypeYAML, Author: "ann", Time: t0}}
	if guard != "" {
		cmds = append(cmds, configcentre.Command{
			Op: configcentre.OpGray, Item: item, Content: "timeout: 5s\n", Match: &configcentre.Match{Labels: map[string]string{"zone": "eu-1"}},
			Guard: json.RawMessage(guard), Author: "bob", Time: t0.Add(time.Minute),
		})
	}
	for _, c := range cmds {
		if _, err := m.ApplyCommand(c); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

type fakeQuery struct {
	mu     sync.Mutex
	exprs  []string
	result promql.Vector
	err    error
}

func (f *fakeQuery) query(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exprs = append(f.exprs, expr)
	return f.result, f.err
}

type recordedAlerts struct {
	exprs  []string
	alerts []*promrules.Alert
}

func (r *recordedAlerts) notify(_ context.Context, expr string, alerts ...*promrules.Alert) {
	r.exprs = append(r.exprs, expr)
	r.alerts = append(r.alerts, alerts...)
}

type harness struct {
	m      *configcentre.Machine
	q      *fakeQuery
	alerts *recordedAlerts
	reg    *prometheus.Registry
	logs   *bytes.Buffer
	e      *Evaluator
}

func newHarness(t *testing.T, guard string, opts Options) *harness {
	h := &harness{m: withGray(t, guard), q: &fakeQuery{}, alerts: &recordedAlerts{}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	opts.Grays, opts.Proposer, opts.Query, opts.Notify = h.m, machineProposer{h.m}, h.q.query, h.alerts.notify
	opts.SLOs = func() []slo.Spec { return loadSLOs(t) }
	opts.Now = func() time.Time { return t0.Add(10 * time.Minute) }
	opts.Registerer = h.reg
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	h.e = New(opts)
	return h
}

func (h *harness) counter(t *testing.T, name, result string) float64 {
	t.Helper()
	var c *prometheus.CounterVec
	switch name {
	case "evaluations":
		c = h.e.evaluations
	case "aborts":
		c = h.e.aborts
	}
	return testutil.ToFloat64(c.WithLabelValues(result))
}

func TestBreachAbortsWithReason(t *testing.T) {
	h := newHarness(t, `{"slo": "checkout-availability"}`, Options{})
	h.q.result = promql.Vector{{Metric: labels.FromStrings("sloth_slo", "checkout-availability"), F: 0.25}}
	h.e.Evaluate(context.Background())

	if len(h.q.exprs) != 1 || !strings.Contains(h.q.exprs[0], `slo:sli_error:ratio_rate5m{sloth_id="shop-checkout-availability"`) {
		t.Fatalf("queried %q, want the SLO's page condition", h.q.exprs)
	}
	it, err := h.m.Item(item)
	if err != nil {
		t.Fatal(err)
	}
	if it.Gray != nil {
		t.Fatalf("gray still active: %+v", it.Gray)
	}
	ch := h.m.Changes(t0, t0.Add(time.Hour))
	last := ch[len(ch)-1]
	if last.Action != configcentre.OpAbort || last.Author != Author || !last.Time.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("last change %+v, want the guard's abort at the evaluation's time", last)
	}
	for _, want := range []string{`guard {"slo":"checkout-availability"} breached at 2026-12-07T12:10:00Z`, "page (fast burn) condition of SLO shop/checkout-availability", "value 0.25"} {
		if !strings.Contains(last.Message, want) {
			t.Errorf("reason %q lacks %q", last.Message, want)
		}
	}
	if got := h.counter(t, "evaluations", "breach"); got != 1 {
		t.Errorf("breach evaluations = %v", got)
	}
	if got := h.counter(t, "aborts", "ok"); got != 1 {
		t.Errorf("aborts ok = %v", got)
	}
	if len(h.alerts.alerts) != 1 {
		t.Fatalf("alerts sent: %d, want 1", len(h.alerts.alerts))
	}
	a := h.alerts.alerts[0]
	want := labels.FromStrings("alertname", AlertName, "namespace", "shop", "group", "payment", "key", "settings", "version", "2")
	if !labels.Equal(a.Labels, want) {
		t.Errorf("alert labels %s, want %s", a.Labels, want)
	}
	if a.Annotations.Get("description") != last.Message || a.State != promrules.StateFiring || !a.ValidUntil.Equal(t0.Add(10*time.Minute+DefaultAlertFor)) {
		t.Errorf("alert %+v", a)
	}
	if h.alerts.exprs[0] != h.q.exprs[0] {
		t.Errorf("alert generator expression %q, want the guard's", h.alerts.exprs[0])
	}

	// Nothing left to guard: the next evaluation queries nothing.
	h.e.Evaluate(context.Background())
	if len(h.q.exprs) != 1 || len(h.alerts.alerts) != 1 {
		t.Errorf("after the abort: %d queries, %d alerts", len(h.q.exprs), len(h.alerts.alerts))
	}
}

func TestNoBreachLeavesTheGray(t *testing.T) {
	h := newHarness(t, `{"promql": "sum(rate(errors_total{version=\"v2\"}[5m])) > 1"}`, Options{})
	h.e.Evaluate(context.Background())
	if len(h.q.exprs) != 1 || h.q.exprs[0] != `sum(rate(errors_total{version="v2"}[5m])) > 1` {
		t.Fatalf("queried %q, want the guard's PromQL", h.q.exprs)
	}
	if it, _ := h.m.Item(item); it.Gray == nil {
		t.Fatal("gray aborted without a breach")
	}
	if got := h.counter(t, "evaluations", "pass"); got != 1 {
		t.Errorf("pass evaluations = %v", got)
	}
	if len(h.alerts.alerts) != 0 {
		t.Errorf("alerts sent: %d", len(h.alerts.alerts))
	}
}

func TestNothingToGuard(t *testing.T) {
	for _, tc := range []struct{ name, guard string }{{"no gray", ""}, {"unguarded gray", "null"}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.guard, Options{})
			h.q.result = promql.Vector{{F: 1}}
			h.e.Evaluate(context.Background())
			if len(h.q.exprs) != 0 {
				t.Errorf("queried %q", h.q.exprs)
			}
			if n := len(h.m.Changes(t0, t0.Add(time.Hour))); n != 1+min(len(tc.guard), 1) {
				t.Errorf("%d changes", n)
			}
		})
	}
}

func TestEvaluationErrorLeavesTheGray(t *testing.T) {
	for _, tc := range []struct{ name, guard, log string }{
		{"query fails", `{"slo": "checkout-availability"}`, "query refused"},
		{"slo removed by a reload", `{"slo": "gone"}`, `no SLO \"gone\"`},
		{"guard stored malformed", `{"cohort": 1}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.guard, Options{})
			h.q.err = errors.New("query refused")
			h.q.result = promql.Vector{{F: 1}}
			h.e.Evaluate(context.Background())
			if it, _ := h.m.Item(item); it.Gray == nil {
				t.Fatal("gray aborted on an evaluation error")
			}
			if got := h.counter(t, "evaluations", "error"); got != 1 {
				t.Errorf("error evaluations = %v", got)
			}
			if !strings.Contains(h.logs.String(), "gray guard could not be evaluated") || !strings.Contains(h.logs.String(), tc.log) {
				t.Errorf("log %q lacks the reason %q", h.logs.String(), tc.log)
			}
			if len(h.alerts.alerts) != 0 {
				t.Errorf("alerts sent: %d", len(h.alerts.alerts))
			}
		})
	}
}

func TestFollowerDoesNotEvaluate(t *testing.T) {
	leading := false
	h := newHarness(t, `{"slo": "checkout-availability"}`, Options{Leading: func() bool { return leading }})
	h.q.result = promql.Vector{{F: 1}}
	h.e.Evaluate(context.Background())
	if len(h.q.exprs) != 0 {
		t.Fatalf("a follower queried %q", h.q.exprs)
	}
	leading = true
	h.e.Evaluate(context.Background())
	if it, _ := h.m.Item(item); it.Gray != nil {
		t.Fatal("the leader did not abort")
	}
}

// A gray ended (and another started) between the listing and the abort
// is not aborted by the old gray's verdict.
func TestAbortNamesTheGrayVersion(t *testing.T) {
	h := newHarness(t, `{"slo": "checkout-availability"}`, Options{})
	h.q.result = promql.Vector{{F: 1}}
	stale := h.m.ActiveGrays()
	for _, c := range []configcentre.Command{
		{Op: configcentre.OpAbort, Item: item, Author: "ann", Time: t0},
		{Op: configcentre.OpGray, Item: item, Content: "timeout: 3s\n", Match: &configcentre.Match{Instances: []string{"pod-a"}}, Author: "ann", Time: t0},
	} {
		if _, err := h.m.ApplyCommand(c); err != nil {
			t.Fatal(err)
		}
	}
	h.e.evaluate(context.Background(), stale[0], loadSLOs(t))
	it, _ := h.m.Item(item)
	if it.Gray == nil || it.Gray.Version != 3 {
		t.Fatalf("the new gray was ended: %+v", it.Gray)
	}
	if got := h.counter(t, "aborts", "failed"); got != 0 {
		t.Errorf("aborts failed = %v", got)
	}
	if len(h.alerts.alerts) != 0 {
		t.Errorf("alerts sent: %d", len(h.alerts.alerts))
	}
}

func TestRunEvaluatesEveryInterval(t *testing.T) {
	h := newHarness(t, `{"promql": "up == 0"}`, Options{Interval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.e.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.q.mu.Lock()
		n := len(h.q.exprs)
		h.q.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 2 evaluations in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type failingProposer struct{ err error }

func (p failingProposer) Propose(context.Context, configcentre.Command) (configcentre.Result, error) {
	return configcentre.Result{}, p.err
}

// An abort that fails is counted and tried again; one refused because
// leadership moved is the new leader's to make, and is not a failure.
func TestAbortFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		failed float64
	}{
		{"store fails", errors.New("disk full"), 1},
		{"no longer the leader", &consensus.NotLeaderError{LeaderID: "b"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, `{"slo": "checkout-availability"}`, Options{})
			h.e.opts.Proposer = failingProposer{tc.err}
			h.q.result = promql.Vector{{F: 1}}
			h.e.Evaluate(context.Background())
			if got := h.counter(t, "aborts", "failed"); got != tc.failed {
				t.Errorf("aborts failed = %v, want %v", got, tc.failed)
			}
			if got := h.counter(t, "aborts", "ok"); got != 0 || len(h.alerts.alerts) != 0 {
				t.Errorf("aborts ok = %v, %d alerts", got, len(h.alerts.alerts))
			}
		})
	}
}

// A guard failing alike at every interval is logged once, and again
// when it recovers.
func TestEvaluationErrorLoggedOnce(t *testing.T) {
	h := newHarness(t, `{"slo": "checkout-availability"}`, Options{})
	h.q.err = errors.New("query refused")
	for range 3 {
		h.e.Evaluate(context.Background())
	}
	if n := strings.Count(h.logs.String(), "gray guard could not be evaluated"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, h.logs.String())
	}
	if got := h.counter(t, "evaluations", "error"); got != 3 {
		t.Errorf("error evaluations = %v, want 3", got)
	}
	h.q.err = nil
	h.e.Evaluate(context.Background())
	if !strings.Contains(h.logs.String(), "gray guard evaluated again") {
		t.Errorf("recovery not logged:\n%s", h.logs.String())
	}
}
