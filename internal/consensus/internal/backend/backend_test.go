package backend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
)

func TestMetricsExposeTheState(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(Help{LeaderChanges: "changes", Term: "term", Commit: "commit", Applied: "applied", LastContact: "contact"},
		func() State { return State{Leader: true, Term: 7, Commit: 12, Applied: 11} })
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	m.LeaderChanges.Inc()
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_cluster_applied_index applied
# TYPE vigil_cluster_applied_index gauge
vigil_cluster_applied_index 11
# HELP vigil_cluster_commit_index commit
# TYPE vigil_cluster_commit_index gauge
vigil_cluster_commit_index 12
# HELP vigil_cluster_last_contact_seconds contact
# TYPE vigil_cluster_last_contact_seconds gauge
vigil_cluster_last_contact_seconds 0
# HELP vigil_cluster_leader 1 if this node is the cluster's leader.
# TYPE vigil_cluster_leader gauge
vigil_cluster_leader 1
# HELP vigil_cluster_leader_changes_total changes
# TYPE vigil_cluster_leader_changes_total counter
vigil_cluster_leader_changes_total 1
# HELP vigil_cluster_term term
# TYPE vigil_cluster_term gauge
vigil_cluster_term 7
`))
	if err != nil {
		t.Fatal(err)
	}
	m.Unregister(reg)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("%d metrics left after Unregister (%v)", n, err)
	}
}

func TestMetricsRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	taken := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_extra", Help: "x"})
	if err := reg.Register(taken); err != nil {
		t.Fatal(err)
	}
	again := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_extra", Help: "x"})
	m := NewMetrics(Help{}, func() State { return State{} }, again)
	if err := m.Register(reg); err == nil {
		t.Fatal("Register succeeded over a taken name")
	}
	if n, _ := testutil.GatherAndCount(reg); n != 1 {
		t.Fatalf("%d metrics registered after a failed Register, want only the one taken before", n)
	}
}

// candidate leads, in term 3, once lead is closed; Fence fails until then.
type candidate struct {
	leaders *fanout.Latest[consensus.LeaderInfo]
	lead    chan struct{}
}

func (c *candidate) WatchLeader() (<-chan consensus.LeaderInfo, func()) { return c.leaders.Watch() }

func (c *candidate) leading() bool {
	select {
	case <-c.lead:
		return true
	default:
		return false
	}
}

func (c *candidate) Fence(context.Context) (uint64, error) {
	if !c.leading() {
		return 0, &consensus.NotLeaderError{}
	}
	return 3, nil
}

func TestCampaignWaitsUntilLeading(t *testing.T) {
	c := &candidate{leaders: fanout.NewLatest(consensus.LeaderInfo{}, fanout.StaleLeader), lead: make(chan struct{})}
	done := make(chan error, 1)
	var token uint64
	go func() {
		var err error
		token, err = Campaign(context.Background(), c, c.leading, time.Hour)
		done <- err
	}()
	close(c.lead)
	// The change wakes Campaign if it already checked and waits.
	c.leaders.Set(consensus.LeaderInfo{ID: "n1", Term: 3, Self: true})
	if err := <-done; err != nil || token != 3 {
		t.Fatalf("Campaign = %d, %v; want 3", token, err)
	}
}

func TestCampaignEnds(t *testing.T) {
	c := &candidate{leaders: fanout.NewLatest(consensus.LeaderInfo{}, fanout.StaleLeader), lead: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Campaign(ctx, c, c.leading, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("with ctx ended: %v", err)
	}
	c.leaders.Close()
	if _, err := Campaign(context.Background(), c, c.leading, time.Hour); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}
