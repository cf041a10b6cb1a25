package querylimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// Each case is refused or allowed for what the engine would really
// evaluate: after duration expressions, step(), offsets and @ are resolved.
func TestPlanCheck(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	p := Plan{DefaultStep: func(int64) int64 { return 60_000 }}
	for _, tc := range []struct {
		name       string
		query      string
		start, end time.Time
		step       time.Duration
		refused    string // "" when allowed
	}{
		{"literal range", "up[100000d:1ms]", at, at, 0, "more than the 1000000 allowed"},
		{"duration expression in the range", "count_over_time(vector(1)[(100000d):1ms])", at, at, 0, "more than the 1000000 allowed"},
		{"arithmetic in the range", "count_over_time(vector(1)[1000d*100:1ms])", at, at, 0, "more than"},
		{"arithmetic in the step", "count_over_time(vector(1)[30d:(1ms*1)])", at, at, 0, "more than"},
		{"step() as the subquery step", "count_over_time(vector(1)[30d:step()])", at, at.Add(time.Hour), time.Millisecond, "more than"},
		{"range() widens the subquery", "count_over_time(vector(1)[range()*10:1s])", at, at.Add(300 * 24 * time.Hour), time.Hour, "more than"},
		{"nested, the inner one huge", "max_over_time(rate(up[5m:1ms])[2h:1m])", at, at, 0, "up[5m:1ms]"},
		{"default step", "max_over_time(up[100000d:])", at, at, 0, "more than"},
		{"offset does not hide it", "count_over_time(vector(1)[100000d:1ms] offset 1d)", at, at, 0, "more than"},
		{"@ does not hide it", "count_over_time(vector(1)[100000d:1ms] @ 1700000000)", at, at, 0, "more than"},
		{"@ end() does not hide it", "count_over_time(vector(1)[100000d:1ms] @ end())", at, at, 0, "more than"},
		{"range query adds its span", "max_over_time(up[1h:1s])", at, at.Add(3650 * 24 * time.Hour), 24 * time.Hour, "more than"},
		{"@ pins a subquery of a long range query", "max_over_time(up[1h:1s] @ 1700000000)", at, at.Add(3650 * 24 * time.Hour), 24 * time.Hour, ""},
		{"too many outer steps", "up", at, at.Add(100 * 24 * time.Hour), time.Second, "steps, more than the 1000000 allowed"},
		{"time out of range", "up", time.Unix(999_000_000_000, 0), time.Unix(1_000_000_100_000, 0), 100010 * time.Second, "out of the range"},
		{"end before start", "up", at, at.Add(-time.Hour), time.Minute, "before start"},
		{"sub-millisecond step", "up", at, at.Add(time.Second), time.Microsecond, "millisecond"},
		{"a month at 1m", "max_over_time(up[30d:1m])", at, at, 0, ""},
		{"a day of 1m steps, subquery of 1h at 1s", "max_over_time(up[1h:1s])", at, at.Add(24 * time.Hour), time.Minute, ""},
		{"offset by an expression", "up offset (1h+1m)", at, at, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.query, tc.start, tc.end, tc.step)
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("got %v, want a refusal containing %q", err, tc.refused)
			}
		})
	}
}

func TestDefaultsFor(t *testing.T) {
	for _, tc := range []struct {
		mem  int64
		want Limits
	}{
		{0, Limits{Timeout: DefaultTimeout, MaxSamples: DefaultMaxSamples, MaxConcurrency: 20, QueueWait: DefaultQueueWait, MaxTraceSpans: DefaultMaxTraceSpans}},
		{1 << 30, Limits{Timeout: DefaultTimeout, MaxSamples: 262_144, MaxSeries: 23_967, MaxResponseBytes: 12 << 20, MaxConcurrency: 8, QueueWait: DefaultQueueWait, MaxTraceSpans: 4096}},
		{256 << 20, Limits{Timeout: DefaultTimeout, MaxSamples: 262_144, MaxSeries: 23_967, MaxResponseBytes: 12 << 20, MaxConcurrency: 2, QueueWait: DefaultQueueWait, MaxTraceSpans: 4096}},
	} {
		if got := DefaultsFor(tc.mem); got != tc.want {
			t.Errorf("DefaultsFor(%d) = %+v, want %+v", tc.mem, got, tc.want)
		}
	}
}

// The engine ends queries over their series budget or answer size with
// errors the API answers 422, and waits for a slot no longer than allowed.
func TestEngineLimits(t *testing.T) {
	st := promqltest.LoadedStorage(t, `
load 1m
  metric{i="1"} 1+1x100
  metric{i="2"} 1+1x100
  metric{i="3"} 1+1x100
`)
	at := time.Unix(0, 0).Add(50 * time.Minute)
	for _, tc := range []struct {
		name   string
		limits Limits
		query  string
		want   error
	}{
		{"within", Limits{MaxSeries: 3, MaxResponseBytes: 1 << 20}, "metric", nil},
		{"too many series", Limits{MaxSeries: 2}, "metric", ErrTooManySeries},
		{"series counted across selectors", Limits{MaxSeries: 4}, `metric + on(i) metric`, ErrTooManySeries},
		{"answer too large", Limits{MaxResponseBytes: 100}, "metric", ErrResponseTooLarge},
		{"too many samples", Limits{MaxSamples: 2}, "metric", promql.ErrTooManySamples("query execution")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(Options{EngineOpts: promql.EngineOpts{LookbackDelta: 5 * time.Minute}, Limits: tc.limits})
			q, err := e.NewInstantQuery(t.Context(), st, nil, tc.query, at)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			res := q.Exec(t.Context())
			if !errors.Is(res.Err, tc.want) && (tc.want == nil || res.Err == nil || res.Err.Error() != tc.want.Error()) {
				t.Errorf("got %v, want %v", res.Err, tc.want)
			}
		})
	}

	slots := NewSlots(1, 50*time.Millisecond)
	e := NewEngine(Options{EngineOpts: promql.EngineOpts{LookbackDelta: 5 * time.Minute}, Slots: slots})
	ctx, release, err := slots.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.NewInstantQuery(t.Context(), st, nil, "metric", at)
	if err != nil {
		t.Fatal(err)
	}
	if res := q.Exec(t.Context()); !errors.Is(res.Err, ErrBusy) {
		t.Errorf("with every slot taken: %v, want ErrBusy", res.Err)
	}
	q.Close()
	// A query run under a held slot does not wait for a second one.
	q, _ = e.NewInstantQuery(ctx, st, nil, "metric", at)
	if res := q.Exec(ctx); res.Err != nil {
		t.Errorf("under the held slot: %v", res.Err)
	}
	q.Close()
	release()
}
