package raft

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	regs := make([]*prometheus.Registry, 3)
	i := 0
	c := newCluster(t, 3, func(o *Options) {
		regs[i] = prometheus.NewRegistry()
		o.Registerer = regs[i]
		i++
	})
	c.waitLeader(nil, 0, 10*time.Second)
	c.propose("x")
	for i := range c.nodes {
		c.waitState(i, []string{"x"}, 10*time.Second)
	}
	// Which node leads may change under load; read it together with the
	// metrics and try again if it moved.
	deadline := time.Now().Add(10 * time.Second)
	var l int
	for {
		l = c.waitLeader(nil, 0, 10*time.Second)
		got := make([]map[string]float64, len(regs))
		for i, reg := range regs {
			got[i] = gather(t, reg)
		}
		if lnow, ok := c.agreedLeader(c.running(), 0); !ok || lnow != l {
			if time.Now().After(deadline) {
				t.Fatal("leadership never held still")
			}
			continue
		}
		for i, m := range got {
			want := 0.0
			if i == l {
				want = 1
			}
			if m["vigil_cluster_leader"] != want {
				t.Errorf("%s: vigil_cluster_leader %v, want %v", c.opts[i].NodeID, m["vigil_cluster_leader"], want)
			}
			if m["vigil_cluster_leader_changes_total"] < 1 {
				t.Errorf("%s: no leader change counted", c.opts[i].NodeID)
			}
			if m["vigil_cluster_term"] < 1 || m["vigil_cluster_applied_index"] < 1 || m["vigil_cluster_commit_index"] < m["vigil_cluster_applied_index"] {
				t.Errorf("%s: term %v commit %v applied %v", c.opts[i].NodeID, m["vigil_cluster_term"], m["vigil_cluster_commit_index"], m["vigil_cluster_applied_index"])
			}
			if m["vigil_cluster_log_store_duration_seconds_count"] < 1 {
				t.Errorf("%s: no log write measured", c.opts[i].NodeID)
			}
		}
		break
	}

	// A closed node leaves the registry, so a new one can take its place.
	c.stop(l)
	if m := gather(t, regs[l]); len(m) != 0 {
		t.Errorf("metrics left after close: %v", m)
	}
	c.start(l)
	if m := gather(t, regs[l]); m["vigil_cluster_term"] < 1 {
		t.Errorf("restarted node's term metric: %v", m)
	}
}

// gather flattens a registry's metrics to name → value (histograms as
// name_count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
