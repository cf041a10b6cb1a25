package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// loadConsensus loads testdata/consensus/healthy.txt and the named
// fixtures (promqltest load scripts, samples from time 0) into a TSDB.
func loadConsensus(t *testing.T, fixtures ...string) *teststorage.TestStorage {
	t.Helper()
	var script strings.Builder
	for _, name := range append([]string{"healthy"}, fixtures...) {
		b, err := os.ReadFile(filepath.Join("testdata", "consensus", name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		script.Write(b)
		script.WriteString("\n")
	}
	return promqltest.LoadedStorage(t, script.String())
}

func TestConsensusCheck(t *testing.T) {
	engine := querylimit.NewEngine(querylimit.Options{})
	// The fixtures hold 15 minutes of samples, one a minute, from time 0.
	now := time.Unix(0, 0).Add(15 * time.Minute)
	for _, tc := range []struct {
		fixture string
		want    []string
		// severity of the finding, and pieces of its summary, values
		// and fix.
		severity Severity
		seen     []string
		values   map[string]float64
		fix      string
		// sample is one of the finding's samples.
		sample string
	}{
		{fixture: ""},
		{fixture: "vigil_self_scraped_follower"},
		{fixture: "etcd_idle_fsync"},
		{
			fixture: "etcd_no_leader", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Critical,
			seen:   []string{"no leader: none of the 1 members that answer has one", "o-2:2381, o-3:2381 are down (up 0) of 3 members"},
			values: map[string]float64{"members": 3, "members_without_leader": 1, "members_down": 2}, fix: "bring members back until a majority runs",
		},
		{
			fixture: "etcd_all_down", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Critical,
			seen: []string{"no member answers (up 0 on all 2)"}, values: map[string]float64{"members": 2}, fix: "majority",
		},
		{
			fixture: "etcd_member_down", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen: []string{"o-3:2381 is down (up 0) of 3 members"}, values: map[string]float64{"members_down": 1}, fix: "etcdctl member remove and member add",
		},
		{
			fixture: "etcd_isolated", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen: []string{"o-3:2381 sees no leader while 2 other members do"}, fix: "peer ports",
		},
		{
			fixture: "etcd_flapping", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen: []string{"8 leader changes in the last 15m"}, fix: "election timeout",
		},
		{
			fixture: "etcd_slow_fsync", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen: []string{"WAL fsync p99 60.8ms on o-1:2381 (want under 10ms)"}, fix: "dedicated SSD",
		},
		{
			fixture: "etcd_proposals", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen:   []string{"45 proposals pending on o-1:2381", "proposals failed in the last 15m"},
			values: map[string]float64{"proposals_pending": 45}, fix: "client load",
		},
		{
			fixture: "etcd_apply_lag", want: []string{"consensus_unhealthy etcd cluster etcd-orders"}, severity: Warning,
			seen: []string{"o-1:2381 applied up to 4005 entries fewer than committed"}, values: map[string]float64{"apply_lag": 4005}, fix: "faster disk",
		},
		{
			fixture: "vigil_no_leader", want: []string{"consensus_unhealthy vigil cluster vigil-ha"}, severity: Critical,
			seen: []string{"no leader: none of the 2 members that answer has one"}, fix: "the peers under cluster: in vigil.yaml",
			sample: `vigil_cluster_last_contact_seconds{job="vigil-ha", instance="v1:7070"} 40`,
		},
		{
			fixture: "vigil_flapping", want: []string{"consensus_unhealthy vigil cluster vigil-ha"}, severity: Warning,
			seen: []string{"leader changes in the last 15m"}, fix: "latency and packet loss",
		},
		{
			fixture: "vigil_follower_behind", want: []string{"consensus_unhealthy vigil cluster vigil-ha"}, severity: Warning,
			seen:   []string{"v2:7070 applied up to 3000 entries fewer than committed", "Raft log store p99 122ms on v2:7070"},
			values: map[string]float64{"apply_lag": 3000}, fix: "vigil's data directory",
		},
	} {
		t.Run(cmpString(tc.fixture, "healthy"), func(t *testing.T) {
			var fixtures []string
			if tc.fixture != "" {
				fixtures = append(fixtures, tc.fixture)
			}
			db := loadConsensus(t, fixtures...)
			got, err := ConsensusCheck{Metrics: db, Engine: engine, Now: func() time.Time { return now }}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f, ok := expectExactly(t, got, tc.want...)
			if !ok {
				return
			}
			if f.Severity != tc.severity || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("severity %s, fix %q; want %s and %q in the fix", f.Severity, f.Fix, tc.severity, tc.fix)
			}
			for _, s := range tc.seen {
				if !strings.Contains(f.Evidence.Summary, s) {
					t.Errorf("summary %q lacks %q", f.Evidence.Summary, s)
				}
			}
			if tc.sample != "" && !slices.Contains(f.Evidence.Samples, tc.sample) {
				t.Errorf("samples %q lack %q", f.Evidence.Samples, tc.sample)
			}
			for k, v := range tc.values {
				if f.Evidence.Values[k] != v {
					t.Errorf("values[%s] = %v, want %v (values %v)", k, f.Evidence.Values[k], v, f.Evidence.Values)
				}
			}
		})
	}
}

func TestConsensusCheckNeedsAnEngineForMetrics(t *testing.T) {
	if _, err := (ConsensusCheck{Metrics: loadConsensus(t)}).Run(t.Context()); !errors.Is(err, ErrConsensusNoEngine) {
		t.Errorf("Run with Metrics and no Engine: %v, want ErrConsensusNoEngine", err)
	}
	if got, err := (ConsensusCheck{}).Run(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("Run without Metrics: %v, %v; want nothing", got, err)
	}
}
