package etcd

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newCluster(t, 1, 1, func(o *Options) { o.Registerer = reg })
	c.waitLeader(0, 10*time.Second)
	c.propose("a")
	token := c.nodes[0].Leader().Term

	deadline := time.Now().Add(5 * time.Second)
	for {
		err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vigil_cluster_leader 1 if this node is the cluster's leader.
# TYPE vigil_cluster_leader gauge
vigil_cluster_leader 1
# HELP vigil_cluster_leader_changes_total Leaders this node has seen elected.
# TYPE vigil_cluster_leader_changes_total counter
vigil_cluster_leader_changes_total 1
`), "vigil_cluster_leader", "vigil_cluster_leader_changes_total")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	if got["vigil_cluster_term"] != float64(token) {
		t.Errorf("term %v, want %d", got["vigil_cluster_term"], token)
	}
	if got["vigil_cluster_applied_index"] == 0 || got["vigil_cluster_commit_index"] < got["vigil_cluster_applied_index"] {
		t.Errorf("commit %v, applied %v", got["vigil_cluster_commit_index"], got["vigil_cluster_applied_index"])
	}

	// Closing unregisters, so a restarted node can register again.
	c.stop(0)
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("%d metric families left after Close", len(mfs))
	}
}
