package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/rules"
)

type noAlertingRules struct{}

func (noAlertingRules) AlertingRules() []*promrules.AlertingRule { return nil }

// gateOnLeader opens the notify gate exactly while the node leads.
func TestGateOnLeader(t *testing.T) {
	node := consensustest.NewMemory(nil) // leads in term 1
	gate := rules.NewNotifyGate(func(context.Context, string, ...*promrules.Alert) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateOnLeader(slog.New(slog.DiscardHandler), node, gate, noAlertingRules{}).Run(ctx) }()

	waitFor(t, "the gate open while leading", 5*time.Second, gate.IsOpen)
	node.Depose()
	waitFor(t, "the gate closed once deposed", 5*time.Second, func() bool { return !gate.IsOpen() })
	node.Elect()
	waitFor(t, "the gate open once elected again", 5*time.Second, gate.IsOpen)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped within 5s of the cancel")
	}
}

// Who writes, per store: on the embedded store and on a single node every
// node writes (no gate); on a cluster's shared store only the leader, and
// no node before its cluster is open.
func TestWritersPerStore(t *testing.T) {
	embeddedCluster := &config.Config{Cluster: &config.Cluster{NodeID: "n1"}}
	shared := &config.Config{Cluster: &config.Cluster{NodeID: "n1"}}
	shared.Storage.Backend = config.BackendClickHouse
	single := &config.Config{}
	single.Storage.Backend = config.BackendClickHouse

	for name, cfg := range map[string]*config.Config{"embedded cluster": embeddedCluster, "single node on clickhouse": single} {
		if newLeaderWrites(cfg).writing() != nil {
			t.Errorf("%s: scrapes gated, want every scrape written", name)
		}
	}
	w := newLeaderWrites(shared)
	writing := w.writing()
	if writing == nil || writing() {
		t.Fatal("shared store: a node writes before its cluster is open")
	}
	node := consensustest.NewMemory(nil)
	w.attach(node)
	if !writing() {
		t.Error("shared store: the leader does not write")
	}
	node.Depose()
	if writing() {
		t.Error("shared store: a follower writes")
	}

	if _, gate := rulesNotify(embeddedCluster, &clusterNode{}, nil); gate == nil {
		t.Error("embedded cluster: no notify gate, so followers' alerts would reach their Alertmanager")
	}
	if _, gate := rulesNotify(shared, &clusterNode{}, nil); gate != nil {
		t.Error("shared store: a notify gate, but only the leader evaluates rules there")
	}
	if doctorLeading(embeddedCluster, &clusterNode{}) != nil || doctorLeading(shared, &clusterNode{}) == nil {
		t.Error("the doctor leaves checks to the leader on the embedded store, or not on a shared one")
	}
}
