package raft

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/testport"
)

func TestOpenRejectsBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addrs := testport.Addrs(t, 2)
	a, b := addrs[0], addrs[1]
	base := func() Options {
		o := testOptions()
		o.NodeID = "n1"
		o.BindAddr = a
		o.Peers = []consensus.Peer{{ID: "n1", Address: a}, {ID: "n2", Address: b}}
		o.DataDir = t.TempDir()
		o.StateMachine = &consensustest.Recorder{}
		return o
	}
	tests := []struct {
		name    string
		change  func(*Options)
		invalid bool // errors.Is ErrInvalidOptions
		want    string
	}{
		{"no node id", func(o *Options) { o.NodeID = "" }, true, "node_id is empty"},
		{"node not in peers", func(o *Options) { o.NodeID = "n3" }, true, "node_id n3 is not in the peers list"},
		{"no peers", func(o *Options) { o.Peers = nil }, true, "no peers"},
		{"duplicate id", func(o *Options) { o.Peers = append(o.Peers, consensus.Peer{ID: "n2", Address: "127.0.0.1:1"}) }, true, "n2 is listed twice"},
		{"duplicate address", func(o *Options) { o.Peers = append(o.Peers, consensus.Peer{ID: "n3", Address: b}) }, true, "share the address"},
		{"peer without address", func(o *Options) { o.Peers[1].Address = "" }, true, "both required"},
		{"peer address without port", func(o *Options) { o.Peers[1].Address = "10.0.0.2" }, true, "peer n2"},
		{"own address disagrees", func(o *Options) { o.AdvertiseAddr = "127.0.0.1:1" }, true, "but this node advertises"},
		{"wildcard bind without advertise", func(o *Options) { o.BindAddr = "0.0.0.0:7946" }, true, "set advertise_addr"},
		{"advertise port 0", func(o *Options) { o.AdvertiseAddr = "127.0.0.1:0"; o.Peers[0].Address = o.AdvertiseAddr }, true, "fixed port"},
		{"bad bind addr", func(o *Options) { o.BindAddr = "nowhere" }, true, "bind_addr"},
		{"no data dir", func(o *Options) { o.DataDir = "" }, true, "data_dir"},
		{"no state machine", func(o *Options) { o.StateMachine = nil }, true, "state machine"},
		{"lease above heartbeat", func(o *Options) { o.LeaderLeaseTimeout = 2 * o.HeartbeatTimeout }, true, "lease"},
		{"bind addr in use", func(o *Options) {
			o.BindAddr = busy.Addr().String()
			o.AdvertiseAddr = a
		}, false, "bind_addr"},
		{"bind addr not on this host", func(o *Options) {
			o.BindAddr = "192.0.2.1:7946"
			o.AdvertiseAddr = a
		}, false, "bind_addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.change(&o)
			n, err := Open(o)
			if err == nil {
				_ = n.Close()
				t.Fatal("opened")
			}
			if errors.Is(err, ErrInvalidOptions) != tc.invalid {
				t.Errorf("errors.Is(err, ErrInvalidOptions) = %v: %v", !tc.invalid, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestOpenRefusesAnotherClustersDataDir(t *testing.T) {
	addrs := testport.Addrs(t, 2)
	dir := filepath.Join(t.TempDir(), "n1")
	single := []consensus.Peer{{ID: "n1", Address: addrs[0]}}
	other := []consensus.Peer{{ID: "n1", Address: addrs[0]}, {ID: "n2", Address: addrs[1]}}
	open := func(peers []consensus.Peer, clusterID string) (*Node, error) {
		o := testOptions()
		o.NodeID, o.BindAddr, o.DataDir = "n1", addrs[0], dir
		o.Peers, o.ClusterID = peers, clusterID
		o.StateMachine = &consensustest.Recorder{}
		return Open(o)
	}
	// A one-node cluster with some state.
	n, err := open(single, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Campaign(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Propose(ctxTimeout(t, 10*time.Second), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		peers     []consensus.Peer
		clusterID string
		wantErr   bool
	}{
		{"other peers", other, "", true},
		{"explicit id against a derived one", single, "prod-eu", true},
		{"same peers resume", single, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := open(tc.peers, tc.clusterID)
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = n.Close()
				t.Fatal("opened another cluster's data dir")
			}
			if !errors.Is(err, consensus.ErrClusterMismatch) {
				t.Errorf("got %v, want ErrClusterMismatch", err)
			}
		})
	}

	// The state survived the refusals.
	sm := &consensustest.Recorder{}
	o := testOptions()
	o.NodeID, o.BindAddr, o.DataDir, o.Peers, o.StateMachine = "n1", addrs[0], dir, single, sm
	n, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Campaign(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := n.Barrier(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := sm.Commands(); len(got) != 1 || got[0] != "x" {
		t.Errorf("state after reopening: %v", got)
	}
}

func TestOpenRefusesADataDirInUse(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.waitLeader(nil, 0, 10*time.Second)
	o := c.opts[0]
	o.BindAddr = testport.Addrs(t, 1)[0]
	o.AdvertiseAddr = c.opts[0].BindAddr
	o.StateMachine = &consensustest.Recorder{}
	n, err := Open(o)
	if err == nil {
		_ = n.Close()
		t.Fatal("a second node opened a data directory in use")
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("got %v, want ErrDataDirInUse", err)
	}
}
