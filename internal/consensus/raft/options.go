// Package raft is the consensus backend embedded in vigil: hashicorp/raft
// over TCP between the nodes, its log and stable store in one BoltDB file
// and its snapshots as files, all under the node's data directory. No
// service outside vigil is needed.
package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// ErrInvalidOptions: Options that cannot start a node (the error says which
// field and why).
var ErrInvalidOptions = errors.New("raft: invalid options")

// ErrDataDirInUse: another process (or node) has the data directory open.
var ErrDataDirInUse = errors.New("raft: data directory in use")

// Options configure one node. Zero durations take the defaults below, which
// suit 3 to 5 nodes on one network: a lost leader is replaced in about 1 to
// 3 seconds.
type Options struct {
	// NodeID names this node; it must be one of Peers unless Join is set.
	NodeID string
	// BindAddr is the host:port the node listens on for other nodes.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes reach this node at, when it
	// differs from BindAddr (a wildcard bind, NAT, a Kubernetes Service). It
	// may be a DNS name; it is resolved at each dial, not at start.
	AdvertiseAddr string
	// Peers is the cluster's membership, this node included, the same list
	// on every node. A node with no state yet starts the cluster with it.
	Peers []consensus.Peer
	// Join starts a node that has no state without bootstrapping: it waits
	// for a member to add it (Membership.Join). Peers may then be empty and
	// need not list this node.
	Join bool
	// ClusterID names the cluster; a data directory written under another
	// id is refused. Empty: derived from Peers (see checkClusterID).
	ClusterID string
	// DataDir holds the log, the stable store and the snapshots.
	DataDir string
	// StateMachine is what the log applies to.
	StateMachine consensus.StateMachine
	// Logger receives the node's and raft's logs; nil discards.
	Logger *slog.Logger
	// Registerer takes the node's metrics (vigil_cluster_*); nil: none.
	// One node per registry.
	Registerer prometheus.Registerer

	// HeartbeatTimeout: a follower that has not heard from the leader for
	// this long (1 s) starts an election. ElectionTimeout (1 s) bounds a
	// candidate's wait for votes. LeaderLeaseTimeout (500 ms) is how long a
	// leader keeps leading without hearing from a majority: a partitioned
	// leader steps down after it.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout (50 ms) bounds how long a committed entry waits to be
	// told to followers when no other traffic carries it.
	CommitTimeout time.Duration
	// SnapshotInterval (2 min) is how often the node checks whether
	// SnapshotThreshold (8192) entries were applied since the last snapshot;
	// if so, it takes one and drops the log before it but TrailingLogs
	// (10240) entries, kept so that a briefly absent follower catches up
	// from the log rather than a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// RetainSnapshots (2) is how many snapshot files are kept.
	RetainSnapshots int
	// DialTimeout (5 s) bounds connecting to and I/O with another node.
	DialTimeout time.Duration

	// wrapStream lets tests put faults between this node and the others.
	wrapStream func(hraft.StreamLayer) hraft.StreamLayer
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.HeartbeatTimeout, time.Second)
	def(&o.ElectionTimeout, time.Second)
	def(&o.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&o.CommitTimeout, 50*time.Millisecond)
	def(&o.SnapshotInterval, 2*time.Minute)
	def(&o.DialTimeout, 5*time.Second)
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 8192
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 10240
	}
	if o.RetainSnapshots == 0 {
		o.RetainSnapshots = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AdvertiseAddr == "" {
		o.AdvertiseAddr = o.BindAddr
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}

// validate checks what can be checked before touching the disk or the
// network; it runs after setDefaults.
func (o *Options) validate() error {
	switch {
	case o.NodeID == "":
		return invalid("node_id is empty")
	case o.DataDir == "":
		return invalid("data_dir is empty")
	case o.StateMachine == nil:
		return invalid("no state machine")
	case o.BindAddr == "":
		return invalid("bind_addr is empty")
	}
	if _, _, err := net.SplitHostPort(o.BindAddr); err != nil {
		return invalid("bind_addr %q: %v", o.BindAddr, err)
	}
	host, port, err := net.SplitHostPort(o.AdvertiseAddr)
	if err != nil {
		return invalid("advertise_addr %q: %v", o.AdvertiseAddr, err)
	}
	// Other nodes dial this address, so it must name this host.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return invalid("advertise_addr %q is not an address other nodes can reach; set advertise_addr when bind_addr is a wildcard", o.AdvertiseAddr)
	}
	if port == "0" {
		return invalid("advertise_addr %q needs a fixed port: the peers list names it", o.AdvertiseAddr)
	}
	if o.LeaderLeaseTimeout > o.HeartbeatTimeout {
		return invalid("leader lease timeout %s exceeds heartbeat timeout %s", o.LeaderLeaseTimeout, o.HeartbeatTimeout)
	}
	if o.ElectionTimeout < o.HeartbeatTimeout {
		return invalid("election timeout %s is below heartbeat timeout %s", o.ElectionTimeout, o.HeartbeatTimeout)
	}
	if len(o.Peers) == 0 && !o.Join {
		return invalid("no peers: list every member, this node included (or join an existing cluster)")
	}
	ids := make(map[string]bool, len(o.Peers))
	addrs := make(map[string]string, len(o.Peers))
	self := false
	for i, p := range o.Peers {
		if p.ID == "" || p.Address == "" {
			return invalid("peer %d: id and address are both required", i)
		}
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			return invalid("peer %s: address %q: %v", p.ID, p.Address, err)
		}
		if ids[p.ID] {
			return invalid("peer id %s is listed twice", p.ID)
		}
		ids[p.ID] = true
		if other, dup := addrs[p.Address]; dup {
			return invalid("peers %s and %s share the address %s", other, p.ID, p.Address)
		}
		addrs[p.Address] = p.ID
		if p.ID == o.NodeID {
			self = true
			if p.Address != o.AdvertiseAddr {
				return invalid("peers list %s at %s but this node advertises %s", p.ID, p.Address, o.AdvertiseAddr)
			}
		}
	}
	if !self && !o.Join {
		return invalid("node_id %s is not in the peers list", o.NodeID)
	}
	return nil
}
