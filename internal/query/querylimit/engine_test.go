package querylimit

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
)

// What the Prometheus API reports of the one engine (its limits, lookback
// and features) is what every path evaluates with.
func TestEngineReportsWhatItRunsWith(t *testing.T) {
	e := NewEngine(Options{
		EngineOpts: promql.EngineOpts{LookbackDelta: time.Minute},
		Limits:     Limits{MaxSamples: 10, MaxSeries: 3},
	})
	lim := e.Limits()
	if lim.MaxSamples != 10 || lim.MaxSeries != 3 || lim.Timeout != DefaultTimeout || lim.MaxConcurrency != DefaultMaxConcurrency {
		t.Errorf("Limits() = %+v: want the given ones, defaults for the rest", lim)
	}
	if d := e.LookbackDelta(); d != time.Minute {
		t.Errorf("LookbackDelta() = %v, want 1m", d)
	}
	if d := NewEngine(Options{}).LookbackDelta(); d != DefaultLookbackDelta {
		t.Errorf("default LookbackDelta() = %v, want %v", d, DefaultLookbackDelta)
	}
	promqlFeatures := e.Features().Get()["promql"]
	if !promqlFeatures["at_modifier"] || !promqlFeatures["negative_offset"] {
		t.Errorf("features %v: want @ and negative offsets on", promqlFeatures)
	}

	// @ and negative offsets evaluate, whoever built the engine.
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	for _, q := range []string{"sum(up @ 100)", "sum(up offset -1m)"} {
		qry, err := e.NewInstantQuery(t.Context(), st, nil, q, time.Unix(1000, 0))
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if res := qry.Exec(t.Context()); res.Err != nil {
			t.Errorf("%s: %v", q, res.Err)
		}
		qry.Close()
	}
}
