package doctor

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// namedCheck finds one finding with its name as the code.
type namedCheck struct {
	name  string
	local bool
}

func (c namedCheck) Name() string    { return c.name }
func (c namedCheck) NodeLocal() bool { return c.local }
func (c namedCheck) Run(context.Context) ([]Finding, error) {
	return []Finding{{Code: c.name, Severity: Warning, Subject: "s"}}, nil
}

// On a store several nodes share, a follower runs only the checks of its
// own process, so a finding about the shared data is raised (and exported
// in vigil_doctor_findings) by one node, the leader, not once per node.
func TestDoctorLeading(t *testing.T) {
	checks := []Check{namedCheck{name: "shared"}, namedCheck{name: "own", local: true}, SuppressionCheck{}, NotifyCheck{}, &IngestCheck{}}
	for _, tc := range []struct {
		name         string
		leading      func() bool
		codes        []string
		skipped      []string
		sharedSeries float64
	}{
		{name: "single store", leading: nil, codes: []string{"own", "shared"}, sharedSeries: 1},
		{name: "leader on a shared store", leading: func() bool { return true }, codes: []string{"own", "shared"}, sharedSeries: 1},
		{name: "follower on a shared store", leading: func() bool { return false }, codes: []string{"own"}, skipped: []string{"shared"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(Options{Checks: checks[:2], Leading: tc.leading, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			r := d.Check(t.Context())
			var codes []string
			for _, f := range r.Findings {
				codes = append(codes, f.Code)
			}
			slices.Sort(codes)
			if !slices.Equal(codes, tc.codes) || !slices.Equal(r.Skipped, tc.skipped) {
				t.Errorf("findings %v skipped %v, want %v and %v", codes, r.Skipped, tc.codes, tc.skipped)
			}
			if got := testutil.ToFloat64(d.gauge.WithLabelValues("shared", "warning", "s")); got != tc.sharedSeries {
				t.Errorf("vigil_doctor_findings{code=shared} = %v, want %v", got, tc.sharedSeries)
			}
		})
	}
	// The checks of the node's own Alertmanager and ingest run everywhere.
	for _, c := range checks[2:] {
		if !isNodeLocal(c) {
			t.Errorf("%s is not node-local", c.Name())
		}
	}
}
