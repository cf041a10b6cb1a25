package guard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/slo"
)

// TestSLOGuardOnTheEngine runs the guard of a gray on PromQL's engine
// over a TSDB: two hours of checkout requests, the SLO's generated SLI
// recording rules evaluated at the end (as the rules manager would), and
// the guard's page condition over what they recorded. A third of the
// requests failing burns a 99% SLO 33 times too fast: the gray is
// aborted; none failing leaves it.
func TestSLOGuardOnTheEngine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		errors  string // failed requests' counter, per minute
		aborted bool
	}{
		{"burning", "0+30x120", true},
		{"healthy", "0+0x120", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := promqltest.LoadedStorage(t, `
load 1m
  http_requests_total{job="checkout",code="200"} 0+60x120
  http_requests_total{job="checkout",code="500"} `+tc.errors+`
`)
			engine := promqltest.NewTestEngine(t, false, 0, 100000)
			query := promrules.EngineQueryFunc(engine, st)
			now := time.Unix(0, 0).UTC().Add(2 * time.Hour)
			specs := loadSLOs(t)[:1] // shop
			record(t, st, query, specs, now)

			m := withGray(t, `{"slo": "checkout-availability"}`)
			alerts := &recordedAlerts{}
			New(Options{
				Grays: m, Proposer: machineProposer{m}, Query: query, Notify: alerts.notify,
				SLOs: func() []slo.Spec { return specs }, Now: func() time.Time { return now },
			}).Evaluate(context.Background())

			it, err := m.Item(item)
			if err != nil {
				t.Fatal(err)
			}
			if aborted := it.Gray == nil; aborted != tc.aborted {
				t.Fatalf("aborted = %v, want %v", aborted, tc.aborted)
			}
			if !tc.aborted {
				return
			}
			ch := m.Changes(now.Add(-time.Hour), now)
			last := ch[len(ch)-1]
			// The 5m error ratio, 30 failed of 90 a minute.
			if last.Action != configcentre.OpAbort || !strings.Contains(last.Message, "value 0.333333") {
				t.Errorf("last change %+v, want the guard's abort with the 5m error ratio", last)
			}
			if len(alerts.alerts) != 1 {
				t.Errorf("%d alerts, want 1", len(alerts.alerts))
			}
		})
	}
}

// record evaluates the SLI recording rules Generate makes for specs at ts
// and appends what they return, as the rules manager does.
func record(t *testing.T, st *teststorage.TestStorage, query promrules.QueryFunc, specs []slo.Spec, ts time.Time) {
	t.Helper()
	groups, err := slo.Generate(specs)
	if err != nil {
		t.Fatal(err)
	}
	app := st.Appender(context.Background())
	n := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			// The SLI ratios over the alert windows; the period's is a
			// mean of the 5m ones over 30 days, which the page ignores.
			if !strings.HasPrefix(r.Record, "slo:sli_error:ratio_rate") || strings.HasSuffix(r.Record, "30d") {
				continue
			}
			v, err := query(context.Background(), r.Expr, ts)
			if err != nil {
				t.Fatalf("%s: %v", r.Record, err)
			}
			for _, s := range v {
				b := labels.NewBuilder(s.Metric).Set(model.MetricNameLabel, r.Record)
				for k, val := range r.Labels {
					b.Set(k, val)
				}
				if _, err := app.Append(0, b.Labels(), ts.UnixMilli(), s.F); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("recorded %d SLI series, want at least the page's 4 windows", n)
	}
}
