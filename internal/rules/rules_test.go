package rules

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// appendErrors writes a counter growing by perSecond for the last two
// minutes, so rate() over a minute sees perSecond.
func appendErrors(t *testing.T, st *teststorage.TestStorage, job string, perSecond float64) {
	t.Helper()
	app := st.Appender(t.Context())
	now := time.Now()
	ls := labels.FromStrings("__name__", "http_errors_total", "job", job)
	for i := 120; i >= 0; i -= 5 {
		ts := now.Add(-time.Duration(i) * time.Second)
		if _, err := app.Append(0, ls, ts.UnixMilli(), float64(120-i)*perSecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

type notified struct {
	mu     sync.Mutex
	alerts []*promrules.Alert
}

func (n *notified) notify(_ context.Context, _ string, alerts ...*promrules.Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.alerts = append(n.alerts, alerts...)
}

func (n *notified) firing(name string) []*promrules.Alert {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*promrules.Alert
	for _, a := range n.alerts {
		if a.Labels.Get("alertname") == name && a.State == promrules.StateFiring {
			out = append(out, a)
		}
	}
	return out
}

// testEngine is built as the server builds its engine, whose default
// subquery step is the global evaluation interval: here 1s, the interval
// the tests apply.
func testEngine() *querylimit.Engine {
	return querylimit.NewEngine(querylimit.Options{Plan: querylimit.Plan{
		DefaultStep: func(int64) int64 { return time.Second.Milliseconds() },
	}})
}

var testURL = &url.URL{Scheme: "http", Host: "vigil.example:7070"}

func newManager(t *testing.T, n *notified) (*Manager, *teststorage.TestStorage) {
	t.Helper()
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	m, err := New(Options{Appendable: st, Queryable: st, Notify: n.notify, Dir: t.TempDir(), Engine: testEngine(), ExternalURL: testURL})
	if err != nil {
		t.Fatal(err)
	}
	go m.Run()
	t.Cleanup(m.Stop)
	return m, st
}

func TestRulesRecordAndAlert(t *testing.T) {
	n := &notified{}
	m, st := newManager(t, n)
	appendErrors(t, st, "checkout", 2)
	appendErrors(t, st, "catalog", 0.1)
	if err := m.Apply(Config{Interval: time.Second, Files: []string{"testdata/shop.rules.yml"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(n.firing("HighErrorRate")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	firing := n.firing("HighErrorRate")
	if len(firing) == 0 {
		t.Fatal("HighErrorRate never fired")
	}
	for _, a := range firing {
		if job := a.Labels.Get("job"); job != "checkout" {
			t.Errorf("alert for %s; only checkout errs more than 0.5/s", job)
		}
		if a.Labels.Get("severity") != "page" || !strings.HasPrefix(a.Annotations.Get("summary"), "checkout fails 2") {
			t.Errorf("labels %v annotations %v", a.Labels, a.Annotations)
		}
	}
	if got := len(m.AlertingRules()); got != 1 {
		t.Errorf("%d alerting rules, want 1", got)
	}
	// The recording rule's series is in the store.
	q, err := st.Querier(0, time.Now().Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "job:http_errors:rate1m"))
	jobs := map[string]bool{}
	for ss.Next() {
		jobs[ss.At().Labels().Get("job")] = true
	}
	if !jobs["checkout"] || !jobs["catalog"] {
		t.Errorf("recorded series for %v, want checkout and catalog", jobs)
	}
}

func TestApplyRejectsInvalidFilesAndKeepsRunning(t *testing.T) {
	m, _ := newManager(t, &notified{})
	if err := m.Apply(Config{Interval: time.Second, Files: []string{"testdata/shop.rules.yml"}}); err != nil {
		t.Fatal(err)
	}
	err := m.Apply(Config{Interval: time.Second, Files: []string{"testdata/shop.rules.yml", "testdata/bad.rules.yml"}})
	if !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), "bad.rules.yml") {
		t.Fatalf("Apply with a broken file: %v, want ErrInvalidRules naming the file", err)
	}
	if got := len(m.RuleGroups()); got != 1 {
		t.Errorf("%d groups after a failed reload, want the previous 1", got)
	}
}

func TestGeneratedGroupsAreWrittenAndLoaded(t *testing.T) {
	m, _ := newManager(t, &notified{})
	gen := []rulefmt.RuleGroup{{Name: "slo-payments", Rules: []rulefmt.Rule{{Record: "slo:up", Expr: "vector(1)"}}}}
	if err := m.Apply(Config{Interval: time.Second, Generated: gen}); err != nil {
		t.Fatal(err)
	}
	if g := m.RuleGroups(); len(g) != 1 || g[0].Name() != "slo-payments" {
		t.Fatalf("groups %v", g)
	}
	bad := []rulefmt.RuleGroup{{Name: "x", Rules: []rulefmt.Rule{{Record: "slo:bad", Expr: "sum("}}}}
	if err := m.Apply(Config{Interval: time.Second, Generated: bad}); !errors.Is(err, ErrInvalidRules) {
		t.Errorf("generated group with a bad expression: %v", err)
	}
}

// blockingQueryable's queries wait for their context, as a query over far
// more data than the engine can read quickly would.
type blockingQueryable struct {
	storage.Queryable
	started chan struct{}
}

func (b blockingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := b.Queryable.Querier(mint, maxt)
	return blockingQuerier{Querier: q, started: b.started}, err
}

type blockingQuerier struct {
	storage.Querier
	started chan struct{}
}

func (b blockingQuerier) Select(ctx context.Context, sort bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	select {
	case b.started <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		return storage.ErrSeriesSet(ctx.Err())
	case <-time.After(time.Minute):
		return storage.EmptySeriesSet()
	}
}

// A stop must not wait for a slow evaluation: it holds the process past its
// shutdown budget otherwise.
func TestStopCancelsEvaluationInFlight(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	started := make(chan struct{}, 1)
	m, err := New(Options{Appendable: st, Queryable: blockingQueryable{Queryable: st, started: started}, Dir: t.TempDir(), Engine: testEngine(), ExternalURL: testURL})
	if err != nil {
		t.Fatal(err)
	}
	go m.Run()
	t.Cleanup(m.Stop)
	if err := m.Apply(Config{Interval: time.Second, Files: []string{"testdata/shop.rules.yml"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no evaluation started")
	}
	begin := time.Now()
	m.Stop()
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Stop took %v with an evaluation in flight; want it cancelled", took)
	}
}

// Rule queries go through the same checks as the API's: a subquery of more
// steps than allowed fails its evaluation instead of taking the process
// down, and a subquery without a step gets the engine's default step, the
// global evaluation interval (at 1s, 2000h is 7.2 million steps; at a
// minute it would be 120,000 and pass).
func TestRuleSubqueriesAreChecked(t *testing.T) {
	m, _ := newManager(t, &notified{})
	gen := []rulefmt.RuleGroup{{Name: "hostile", Rules: []rulefmt.Rule{
		{Record: "huge", Expr: "count_over_time(vector(1)[100000d:1ms])"},
		{Record: "default_step", Expr: "count_over_time(vector(1)[2000h:])"},
		{Record: "fine", Expr: "count_over_time(vector(1)[1h:1m])"},
	}}}
	if err := m.Apply(Config{Interval: time.Second, Generated: gen}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"huge": "more than the 1000000 allowed", "default_step": "more than the 1000000 allowed", "fine": ""}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]string{}
		evaluated := 0
		for _, g := range m.RuleGroups() {
			for _, r := range g.Rules() {
				if r.Health() != promrules.HealthUnknown {
					evaluated++
				}
				if err := r.LastError(); err != nil {
					got[r.Name()] = err.Error()
				} else {
					got[r.Name()] = ""
				}
			}
		}
		if evaluated == len(want) {
			for name, w := range want {
				if (w == "") != (got[name] == "") || !strings.Contains(got[name], w) {
					t.Errorf("rule %s: error %q, want %q", name, got[name], w)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not evaluated within 10s: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The engine and the external URL are the server's, never made up here.
func TestNewNeedsEngineAndExternalURL(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	for name, opts := range map[string]Options{
		"no engine":       {Appendable: st, Queryable: st, Dir: t.TempDir(), ExternalURL: testURL},
		"no external URL": {Appendable: st, Queryable: st, Dir: t.TempDir(), Engine: testEngine()},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			_, _ = New(opts)
		}()
	}
}
