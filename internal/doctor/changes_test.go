package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// loadChanges loads the named fixtures of testdata/changes (promqltest
// load scripts, samples from time 0) into a TSDB.
func loadChanges(t *testing.T, fixtures ...string) *teststorage.TestStorage {
	t.Helper()
	var script strings.Builder
	for _, name := range fixtures {
		b, err := os.ReadFile(filepath.Join("testdata", "changes", name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		script.Write(b)
		script.WriteString("\n")
	}
	return promqltest.LoadedStorage(t, script.String())
}

func minute(m int) time.Time { return time.Unix(0, 0).Add(time.Duration(m) * time.Minute).UTC() }

// changeList serves a fixed list of changes, filtered as
// /api/v1/changes filters them.
func changeList(list ...configcentre.Change) func(context.Context, time.Time, time.Time) ([]configcentre.Change, error) {
	return func(_ context.Context, start, end time.Time) ([]configcentre.Change, error) {
		var out []configcentre.Change
		for _, c := range list {
			if !c.Time.Before(start) && !c.Time.After(end) {
				out = append(out, c)
			}
		}
		return out, nil
	}
}

func TestChangeRegressionCheck(t *testing.T) {
	engine := querylimit.NewEngine(querylimit.Options{})
	deploy := configcentre.Change{Time: minute(15), Kind: "deploy", Action: "deploy", Service: "checkout", Instance: "c-1", From: "1.4.2", To: "1.5.0"}
	put := configcentre.Change{Time: minute(15), Kind: "config", Action: "put", Item: "shop/payment/settings", Version: 3, Author: "ann"}
	abort := put
	abort.Action = "abort"
	quietDeploy := deploy
	quietDeploy.Service = "quiet"
	late := deploy
	late.Time = minute(24)
	for _, tc := range []struct {
		name    string
		fixture string
		changes []configcentre.Change
		// pieces of the one finding's summary, and its values; none: no
		// finding.
		seen   []string
		values map[string]float64
		fix    string
	}{
		{name: "steady after a deploy", fixture: "steady", changes: []configcentre.Change{deploy}},
		{name: "errors after a deploy", fixture: "errors_after", changes: []configcentre.Change{deploy},
			seen: []string{
				"deploy of checkout 1.4.2 → 1.5.0 on c-1 at 1970-01-01T00:15:00Z followed by error ratio 1.0% → 23.1% of service checkout",
			},
			values: map[string]float64{"calls_before": 1010, "calls_after": 1300}, fix: "Roll the deploy back"},
		{name: "latency after a deploy", fixture: "slow_after", changes: []configcentre.Change{deploy},
			seen: []string{"followed by p95 latency 96ms → 483ms of service checkout"}},
		{name: "errors after a config put", fixture: "errors_after", changes: []configcentre.Change{put},
			seen: []string{"config put of shop/payment/settings (version 3, by ann) at 1970-01-01T00:15:00Z followed by error ratio"},
			fix:  "Roll shop/payment/settings back"},
		// An abort is the cure, not a suspect.
		{name: "errors after an abort", fixture: "errors_after", changes: []configcentre.Change{abort}},
		// Too soon to judge (under MinAfter) and too few calls.
		{name: "too soon", fixture: "errors_after", changes: []configcentre.Change{late}},
		{name: "too few calls", fixture: "steady", changes: []configcentre.Change{quietDeploy}},
		{name: "no changes", fixture: "errors_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := loadChanges(t, "base", tc.fixture)
			got, err := ChangeRegressionCheck{
				Changes: changeList(tc.changes...), Metrics: st, Engine: engine, Now: func() time.Time { return minute(25) },
			}.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if len(tc.seen) > 0 {
				want = []string{"change_regression service checkout"}
			}
			expectFindings(t, got, want...)
			if len(want) == 0 || len(got) != 1 {
				return
			}
			f := got[0]
			if f.Severity != Warning {
				t.Errorf("severity %s", f.Severity)
			}
			for _, s := range tc.seen {
				if !strings.Contains(f.Evidence.Summary, s) {
					t.Errorf("summary %q lacks %q", f.Evidence.Summary, s)
				}
			}
			for k, v := range tc.values {
				if f.Evidence.Values[k] != v {
					t.Errorf("value %s = %v, want %v", k, f.Evidence.Values[k], v)
				}
			}
			if !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", f.Fix, tc.fix)
			}
		})
	}
}

func TestChangeChecksNeedAnEngine(t *testing.T) {
	st := loadChanges(t, "base")
	if _, err := (ChangeRegressionCheck{Changes: changeList(), Metrics: st}).Run(context.Background()); !errors.Is(err, ErrChangesNoEngine) {
		t.Errorf("change regression: %v", err)
	}
	if _, err := (StaleConfigCheck{Config: fakeItems{}, Metrics: st}).Run(context.Background()); !errors.Is(err, ErrChangesNoEngine) {
		t.Errorf("stale config: %v", err)
	}
}

// fakeItems is a configuration centre holding items, whose changes are
// changes.
type fakeItems struct {
	items   map[string]configcentre.Item
	changes []configcentre.Change
}

func (f fakeItems) Item(k configcentre.Key) (configcentre.Item, error) {
	it, ok := f.items[k.String()]
	if !ok {
		return configcentre.Item{}, configcentre.ErrNotFound
	}
	return it, nil
}

func (f fakeItems) Changes(start, end time.Time) []configcentre.Change {
	out, _ := changeList(f.changes...)(context.Background(), start, end)
	return out
}

func TestStaleConfigCheck(t *testing.T) {
	engine := querylimit.NewEngine(querylimit.Options{})
	st := loadChanges(t, "applied")
	// Versions 1 and 3 formal, 2 a gray that was aborted.
	versions := []configcentre.Version{{Version: 1}, {Version: 2, Gray: true}, {Version: 3}}
	settings := configcentre.Item{Versions: versions, Formal: 3}
	grayOn1 := configcentre.Item{Versions: versions, Formal: 3, Gray: &configcentre.Gray{Version: 1}}
	for _, tc := range []struct {
		name     string
		items    fakeItems
		severity Severity
		summary  string
		samples  []string
	}{
		{
			name: "aborted gray and old version", items: fakeItems{items: map[string]configcentre.Item{"shop/payment/settings": settings}},
			severity: Critical, summary: "2 instance(s) not on formal version 3 of shop/payment/settings (last change over 5m ago)",
			samples: []string{"checkout c-2: gray version 2, no longer active", "checkout c-3: version 1"},
		},
		{
			// c-3's version 1 is the active gray's (a rollback gray, say).
			name: "old version only", items: fakeItems{items: map[string]configcentre.Item{"shop/payment/settings": grayOn1}},
			severity: Critical, summary: "1 instance(s) not on formal version 3 or gray version 1",
			samples: []string{"checkout c-2: gray version 2, no longer active"},
		},
		{
			name: "changed within the grace", items: fakeItems{items: map[string]configcentre.Item{"shop/payment/settings": settings},
				changes: []configcentre.Change{{Time: minute(27), Kind: "config", Action: "abort", Item: "shop/payment/settings", Version: 3}}},
		},
		{name: "unknown items", items: fakeItems{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StaleConfigCheck{Config: tc.items, Metrics: st, Engine: engine, Now: func() time.Time { return minute(30) }}.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.summary != "" {
				want = []string{"stale_config config shop/payment/settings"}
			}
			expectFindings(t, got, want...)
			if len(want) == 0 || len(got) != 1 {
				return
			}
			f := got[0]
			if f.Severity != tc.severity {
				t.Errorf("severity %s, want %s", f.Severity, tc.severity)
			}
			if !strings.Contains(f.Evidence.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", f.Evidence.Summary, tc.summary)
			}
			if strings.Join(f.Evidence.Samples, "|") != strings.Join(tc.samples, "|") {
				t.Errorf("samples %q, want %q", f.Evidence.Samples, tc.samples)
			}
		})
	}
}
