package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
	"github.com/vigil-observability/vigil/internal/consensus/internal/backend"
)

// Node is one member of an embedded Raft cluster.
type Node struct {
	opts  Options
	raft  *hraft.Raft
	fsm   *fsm
	store *raftboltdb.BoltStore

	observer *hraft.Observer
	leaders  *fanout.Latest[consensus.LeaderInfo]
	metrics  *backend.Metrics
	stop     chan struct{}
	done     chan struct{}

	// nudge asks nudgeCommits to tell the followers the commit index now.
	nudge     chan struct{}
	nudgeDone chan struct{}

	// fencedTerm is the latest term in which this node, as leader, has
	// applied everything committed before it (one barrier per term).
	fenceMu    sync.Mutex
	fencedTerm uint64

	closeOnce sync.Once
	closeErr  error
}

var (
	_ consensus.Leadership  = (*Node)(nil)
	_ consensus.Replicated  = (*Node)(nil)
	_ consensus.Membership  = (*Node)(nil)
	_ consensus.ReadIndexer = (*Node)(nil)
)

// Open starts a node: it resumes from the data directory if that holds
// state, and otherwise bootstraps the cluster from Peers (every node given
// the same Peers may do so) unless Join is set. Bad options, a data
// directory of another cluster (consensus.ErrClusterMismatch) or an address
// that cannot be bound fail here.
func Open(opts Options) (*Node, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raft data dir: %w", err)
	}
	logger := newHclog(opts.Logger.With("node", opts.NodeID))

	// bbolt waits for its file lock forever by default; a second process on
	// the same data directory must fail instead.
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(opts.DataDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: raft log store in %s is locked by another process", ErrDataDirInUse, opts.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("raft log store: %w", err)
	}
	n := &Node{
		opts: opts, store: store, stop: make(chan struct{}), done: make(chan struct{}),
		nudge: make(chan struct{}, 1), nudgeDone: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			_ = store.Close()
		}
	}()
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(opts.DataDir, opts.RetainSnapshots, logger.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("raft snapshot store: %w", err)
	}
	hasState, err := hraft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, fmt.Errorf("raft state: %w", err)
	}
	if err := checkClusterID(&opts, hasState, store, snaps); err != nil {
		return nil, err
	}
	var logStore prometheus.Histogram
	n.metrics, logStore = newMetrics(n)
	logs, err := hraft.NewLogCache(512, timedLogStore{LogStore: store, h: logStore})
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}

	ln, err := net.Listen("tcp", opts.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("raft bind_addr: %w", err)
	}
	var stream hraft.StreamLayer = newStreamLayer(ln, opts.AdvertiseAddr)
	if opts.wrapStream != nil {
		stream = opts.wrapStream(stream)
	}
	trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: opts.DialTimeout,
		Logger:  logger.Named("transport"),
	})

	cfg := hraft.DefaultConfig()
	cfg.LocalID = hraft.ServerID(opts.NodeID)
	cfg.Logger = logger
	cfg.HeartbeatTimeout = opts.HeartbeatTimeout
	cfg.ElectionTimeout = opts.ElectionTimeout
	cfg.LeaderLeaseTimeout = opts.LeaderLeaseTimeout
	cfg.CommitTimeout = opts.CommitTimeout
	cfg.SnapshotInterval = opts.SnapshotInterval
	cfg.SnapshotThreshold = opts.SnapshotThreshold
	cfg.TrailingLogs = opts.TrailingLogs
	cfg.NoLegacyTelemetry = true
	if err := hraft.ValidateConfig(cfg); err != nil {
		_ = trans.Close()
		return nil, invalid("%v", err)
	}

	n.fsm = newFSM(opts.StateMachine, func() uint64 {
		if list, err := snaps.List(); err == nil && len(list) > 0 {
			return list[0].Index
		}
		return 0
	})
	r, err := hraft.NewRaft(cfg, n.fsm, logs, store, snaps, trans)
	if err != nil {
		_ = trans.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	n.raft = r
	if err := n.metrics.Register(opts.Registerer); err != nil {
		_ = r.Shutdown().Error()
		return nil, fmt.Errorf("raft metrics: %w", err)
	}
	if !hasState && !opts.Join {
		servers := make([]hraft.Server, 0, len(opts.Peers))
		for _, p := range opts.Peers {
			servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.Address)})
		}
		// Every node given the same peers bootstraps the same configuration;
		// raft refuses only when there is already state, which was checked.
		if err := r.BootstrapCluster(hraft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
			n.metrics.Unregister(opts.Registerer)
			_ = r.Shutdown().Error()
			return nil, fmt.Errorf("raft bootstrap: %w", err)
		}
	}

	obs := make(chan hraft.Observation, 64)
	n.observer = hraft.NewObserver(obs, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.LeaderObservation, hraft.RaftState:
			return true
		}
		return false
	})
	n.leaders = fanout.NewLatest(n.leaderInfo(), fanout.StaleLeader)
	r.RegisterObserver(n.observer)
	go n.watchLeader(obs)
	go n.nudgeCommits()
	ok = true
	return n, nil
}

// Close leaves the cluster's work to the others (without removing this
// node from the membership) and releases the data directory.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		<-n.done
		<-n.nudgeDone
		n.raft.DeregisterObserver(n.observer)
		err := n.raft.Shutdown().Error()
		n.fsm.subs.Close()
		n.leaders.Close()
		n.metrics.Unregister(n.opts.Registerer)
		n.closeErr = errors.Join(err, n.store.Close())
	})
	return n.closeErr
}

// ID is this node's id.
func (n *Node) ID() string { return n.opts.NodeID }

// Address is the address other nodes reach this node at.
func (n *Node) Address() string { return n.opts.AdvertiseAddr }

// watchLeader turns raft's observations into LeaderInfo changes. Raft drops
// observations for a full channel, so the state is re-read now and then too.
func (n *Node) watchLeader(obs <-chan hraft.Observation) {
	defer close(n.done)
	tick := time.NewTicker(n.opts.HeartbeatTimeout)
	defer tick.Stop()
	var elected consensus.LeaderInfo
	for {
		select {
		case <-n.stop:
			return
		case <-obs:
		case <-tick.C:
		}
		info := n.leaderInfo()
		if info.ID != "" && (info.ID != elected.ID || info.Term != elected.Term) {
			elected = info
			n.metrics.LeaderChanges.Inc()
		}
		n.leaders.Set(info)
	}
}

func (n *Node) leaderInfo() consensus.LeaderInfo {
	addr, id := n.raft.LeaderWithID()
	info := consensus.LeaderInfo{ID: string(id), Address: string(addr), Term: n.raft.CurrentTerm()}
	info.Self = info.ID == n.opts.NodeID && n.raft.State() == hraft.Leader
	return info
}

// Leader implements consensus.Leadership.
func (n *Node) Leader() consensus.LeaderInfo { return n.leaderInfo() }

// WatchLeader implements consensus.Leadership.
func (n *Node) WatchLeader() (<-chan consensus.LeaderInfo, func()) { return n.leaders.Watch() }

func (n *Node) notLeader() error {
	if n.raft.State() == hraft.Shutdown {
		return consensus.ErrClosed
	}
	addr, id := n.raft.LeaderWithID()
	return &consensus.NotLeaderError{LeaderID: string(id), LeaderAddress: string(addr)}
}

// mapErr turns raft's errors into the package's sentinels.
func (n *Node) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return n.notLeader()
	case errors.Is(err, hraft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", consensus.ErrLeadershipLost, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return consensus.ErrClosed
	}
	return fmt.Errorf("raft: %w", err)
}

// wait waits for a raft future or the context. Raft futures cannot be
// cancelled; one left behind resolves on its own timeout or at shutdown.
func wait(ctx context.Context, f hraft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timeout is what raft's calls that take a timeout get from a context: the
// time left, or none.
func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

// Propose implements consensus.Replicated.
func (n *Node) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if n.raft.State() != hraft.Leader {
		return nil, n.notLeader()
	}
	f := n.raft.Apply(cmd, timeout(ctx))
	if err := wait(ctx, f); err != nil {
		return nil, n.mapErr(err)
	}
	select {
	case n.nudge <- struct{}{}:
	default: // one is pending already, and will carry this commit too
	}
	resp, _ := f.Response().(fsmResponse)
	return resp.result, resp.err
}

// nudgeCommits makes the followers learn of a commit at once rather than
// after CommitTimeout. Raft tells a follower the commit index only with
// the next entries it sends, or after a random wait between CommitTimeout
// and twice that when none come; until then the follower has not applied
// the command, so a write forwarded by a follower, which answers once it
// has, and a read on a follower, which waits until it has, would take
// that long (75 ms on average with the default 50 ms). A barrier is the
// cheapest entry raft offers to carry it: an empty log entry, which the
// state machine never sees. One runs after each command, and a burst of
// commands shares one, run after the previous has committed.
func (n *Node) nudgeCommits() {
	defer close(n.nudgeDone)
	for {
		select {
		case <-n.stop:
			return
		case <-n.nudge:
		}
		if n.raft.State() != hraft.Leader {
			continue
		}
		f := n.raft.Barrier(n.opts.HeartbeatTimeout)
		errc := make(chan error, 1)
		go func() { errc <- f.Error() }()
		select {
		case <-n.stop:
			return
		case <-errc:
		}
	}
}

// Barrier implements consensus.Replicated.
func (n *Node) Barrier(ctx context.Context) error {
	if n.raft.State() != hraft.Leader {
		return n.notLeader()
	}
	return n.mapErr(wait(ctx, n.raft.Barrier(timeout(ctx))))
}

// ReadIndex implements consensus.ReadIndexer, on the leader only: the
// index of the last command applied here, once Fence has confirmed that a
// majority still follows this node (after the call began) and that
// everything committed in earlier terms is applied. Every write
// acknowledged before the call is then at or below it: this node applied
// its own term's before acknowledging them. A follower cannot tell what
// the leader has committed and returns a *NotLeaderError.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if _, err := n.Fence(ctx); err != nil {
		return 0, err
	}
	index, _ := n.fsm.appliedIndex()
	return index, nil
}

// WaitApplied implements consensus.ReadIndexer.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.fsm.waitApplied(ctx, index, n.stop)
}

// AppliedIndex is the index of the last command the local state machine
// applied, as ReadIndex and WaitApplied count.
func (n *Node) AppliedIndex() uint64 {
	index, _ := n.fsm.appliedIndex()
	return index
}

// Subscribe implements consensus.Replicated.
func (n *Node) Subscribe(buffer int) (<-chan consensus.Applied, func()) {
	return n.fsm.subs.Subscribe(buffer)
}

// Fence implements consensus.Fencer: VerifyLeader each time (heartbeats to
// a majority, no log write), a barrier once per term.
func (n *Node) Fence(ctx context.Context) (uint64, error) {
	if n.raft.State() != hraft.Leader {
		return 0, n.notLeader()
	}
	term := n.raft.CurrentTerm()
	if err := wait(ctx, n.raft.VerifyLeader()); err != nil {
		if errors.Is(err, hraft.ErrLeadershipLost) {
			// For a fence there is no command in doubt: it simply lost.
			return 0, n.notLeader()
		}
		return 0, n.mapErr(err)
	}
	n.fenceMu.Lock()
	fenced := n.fencedTerm
	n.fenceMu.Unlock()
	if fenced != term {
		if err := wait(ctx, n.raft.Barrier(timeout(ctx))); err != nil {
			return 0, n.mapErr(err)
		}
		n.fenceMu.Lock()
		n.fencedTerm = max(n.fencedTerm, term)
		n.fenceMu.Unlock()
	}
	// A newer term since the check means this node lost (and maybe won
	// again) in between; the token read before would be stale.
	if n.raft.CurrentTerm() != term || n.raft.State() != hraft.Leader {
		return 0, n.notLeader()
	}
	return term, nil
}

// Campaign implements consensus.Leadership. Every Raft voter stands for
// election all the time, so this only waits until this node wins.
func (n *Node) Campaign(ctx context.Context) (uint64, error) {
	return backend.Campaign(ctx, n, func() bool { return n.leaderInfo().Self }, n.opts.HeartbeatTimeout)
}

// Resign implements consensus.Leadership.
func (n *Node) Resign(ctx context.Context) error {
	if n.raft.State() != hraft.Leader {
		return nil
	}
	return n.mapErr(wait(ctx, n.raft.LeadershipTransfer()))
}

// Status implements consensus.Membership.
func (n *Node) Status(ctx context.Context) (consensus.Status, error) {
	f := n.raft.GetConfiguration()
	if err := wait(ctx, f); err != nil {
		return consensus.Status{}, n.mapErr(err)
	}
	info := n.leaderInfo()
	st := consensus.Status{Leader: info.ID, Term: info.Term}
	for _, s := range f.Configuration().Servers {
		m := consensus.Member{ID: string(s.ID), Address: string(s.Address), State: consensus.StateUnknown, Voter: s.Suffrage == hraft.Voter}
		switch {
		case m.ID == n.opts.NodeID:
			m.Local = true
			m.State = stateName(n.raft.State())
			m.CommitIndex = n.raft.CommitIndex()
			m.AppliedIndex = n.raft.AppliedIndex()
			if m.State != consensus.StateLeader {
				m.LastContact = n.raft.LastContact()
			}
		case m.ID == info.ID:
			m.State = consensus.StateLeader
		}
		st.Members = append(st.Members, m)
	}
	return st, nil
}

func stateName(s hraft.RaftState) string {
	switch s {
	case hraft.Leader:
		return consensus.StateLeader
	case hraft.Follower:
		return consensus.StateFollower
	case hraft.Candidate:
		return consensus.StateCandidate
	case hraft.Shutdown:
		return consensus.StateShutdown
	}
	return consensus.StateUnknown
}

// Join implements consensus.Membership.
func (n *Node) Join(ctx context.Context, p consensus.Peer) error {
	if p.ID == "" || p.Address == "" {
		return invalid("join: id and address are both required")
	}
	if n.raft.State() != hraft.Leader {
		return n.notLeader()
	}
	return n.mapErr(wait(ctx, n.raft.AddVoter(hraft.ServerID(p.ID), hraft.ServerAddress(p.Address), 0, timeout(ctx))))
}

// Remove implements consensus.Membership.
func (n *Node) Remove(ctx context.Context, id string) error {
	if n.raft.State() != hraft.Leader {
		return n.notLeader()
	}
	return n.mapErr(wait(ctx, n.raft.RemoveServer(hraft.ServerID(id), 0, timeout(ctx))))
}

// Snapshot takes a snapshot now (the log before it is then compacted as
// TrailingLogs allows); snapshots are otherwise taken on their own.
func (n *Node) Snapshot(ctx context.Context) error {
	return n.mapErr(wait(ctx, n.raft.Snapshot()))
}
