package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Node is one vigil node of a cluster kept in etcd.
type Node struct {
	opts   Options
	client *clientv3.Client
	keys   keys

	hub     hub
	leaders leaderHub
	metrics *metrics

	// lead is this node's leadership while it holds it, nil otherwise.
	lead atomic.Pointer[leadership]
	// resign asks the campaign loop to give leadership up.
	resign chan chan error

	applied     atomic.Int64 // revision of the last command applied
	commit      atomic.Int64 // revision of the newest command known to exist
	lastContact atomic.Int64 // unix nanoseconds of the last answer from etcd
	appliedCond *sync.Cond   // broadcast when applied moves
	appliedMu   sync.Mutex

	pendingMu sync.Mutex
	pending   map[string]chan result

	sessionMu      sync.Mutex
	session        *concurrency.Session
	sessionChanged chan struct{}

	snapReqs    chan chan snapshotTaken
	snapWriting atomic.Bool
	sinceSnap   int

	seq    atomic.Uint64
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var (
	_ consensus.Leadership = (*Node)(nil)
	_ consensus.Replicated = (*Node)(nil)
	_ consensus.Membership = (*Node)(nil)
)

// leadership is one term of this node's: the election key and its
// CreateRevision, the token.
type leadership struct {
	key     string
	token   int64
	session *concurrency.Session
}

type result struct {
	res []byte
	err error
}

type keys struct {
	clusterID, election, members, log, snapshot, snapshotRev string
}

func newKeys(prefix string) keys {
	return keys{
		clusterID:   prefix + "/cluster_id",
		election:    prefix + "/election/",
		members:     prefix + "/members/",
		log:         prefix + "/log/",
		snapshot:    prefix + "/snapshot",
		snapshotRev: prefix + "/snapshot_rev",
	}
}

// revString pads a revision so that etcd's byte-wise value comparison
// orders revisions numerically.
func revString(rev int64) string { return fmt.Sprintf("%020d", rev) }

// nodeInfo is the value of a campaign key and of a member key.
type nodeInfo struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Set in member keys only: the node's progress when it last wrote.
	CommitIndex  int64 `json:"commit_index,omitempty"`
	AppliedIndex int64 `json:"applied_index,omitempty"`
	LastContact  int64 `json:"last_contact_unix_nano,omitempty"`
}

// Open connects to etcd, checks that the prefix belongs to this cluster
// and starts the node: it restores the latest snapshot, applies the log
// after it, and campaigns for leadership. Bad options, an etcd that does
// not answer within DialTimeout (ErrUnreachable) or a prefix holding another
// cluster (consensus.ErrClusterMismatch) fail here.
func Open(opts Options) (*Node, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		TLS:         opts.TLS,
		Username:    opts.Username,
		Password:    opts.Password,
		DialTimeout: opts.DialTimeout,
		// Failures reach the caller as errors; the client's own log would
		// repeat them on every retry.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrUnreachable, opts.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		opts:           opts,
		client:         client,
		keys:           newKeys(opts.Prefix),
		resign:         make(chan chan error),
		pending:        make(map[string]chan result),
		snapReqs:       make(chan chan snapshotTaken),
		sessionChanged: make(chan struct{}, 1),
		ctx:            ctx,
		cancel:         cancel,
	}
	n.appliedCond = sync.NewCond(&n.appliedMu)
	n.hub.init()
	n.leaders.init(consensus.LeaderInfo{})
	fail := func(err error) (*Node, error) {
		cancel()
		_ = client.Close()
		return nil, err
	}
	if err := n.checkCluster(); err != nil {
		return fail(err)
	}
	n.metrics = newMetrics(n)
	if err := n.metrics.register(opts.Registerer); err != nil {
		return fail(fmt.Errorf("etcd metrics: %w", err))
	}
	n.wg.Add(4)
	go n.applyLoop()
	go n.observeLoop()
	go n.campaignLoop()
	go n.memberLoop()
	return n, nil
}

// checkCluster is the first request: it bounds the wait for an unreachable
// etcd, records a fresh prefix's cluster id and refuses another's.
func (n *Node) checkCluster() error {
	want := n.opts.ClusterID
	if want == "" {
		want = defaultClusterID
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.DialTimeout)
	defer cancel()
	k := n.keys
	resp, err := n.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k.clusterID), "=", 0)).
		Then(clientv3.OpPut(k.clusterID, want), clientv3.OpPut(k.snapshotRev, revString(0))).
		Else(clientv3.OpGet(k.clusterID)).
		Commit()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: no answer from %v within %s: %w", ErrUnreachable, n.opts.Endpoints, n.opts.DialTimeout, err)
		}
		return fmt.Errorf("etcd: %v: %w", n.opts.Endpoints, err)
	}
	n.touch()
	if resp.Succeeded {
		n.opts.Logger.Info("recorded the cluster id on a fresh prefix", "prefix", n.opts.Prefix, "cluster_id", want)
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("etcd: %s vanished while read", k.clusterID)
	}
	got := string(kvs[0].Value)
	if n.opts.ClusterID != "" && got != n.opts.ClusterID {
		return fmt.Errorf("%w: etcd prefix %s holds cluster %q, this node is configured for cluster %q",
			consensus.ErrClusterMismatch, n.opts.Prefix, got, n.opts.ClusterID)
	}
	return nil
}

// noteCommit records that the log reaches at least rev.
func (n *Node) noteCommit(rev int64) {
	for {
		c := n.commit.Load()
		if rev <= c || n.commit.CompareAndSwap(c, rev) {
			return
		}
	}
}

func (n *Node) touch() { n.lastContact.Store(time.Now().UnixNano()) }

// Close resigns if this node leads, leaves the membership (its lease is
// revoked, so the others need not wait for it to expire) and disconnects.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		n.hub.close()
		n.leaders.close()
		n.failPending(consensus.ErrClosed)
		n.metrics.unregister(n.opts.Registerer)
		n.closeErr = n.client.Close()
	})
	return n.closeErr
}

// ID is this node's id.
func (n *Node) ID() string { return n.opts.NodeID }

// Address is this node's API address.
func (n *Node) Address() string { return n.opts.Address }

func (n *Node) closed() bool { return n.ctx.Err() != nil }

// notLeader names the leader as this node knows it.
func (n *Node) notLeader() error {
	if n.closed() {
		return consensus.ErrClosed
	}
	info := n.leaders.get()
	if info.Self {
		info = consensus.LeaderInfo{}
	}
	return &consensus.NotLeaderError{LeaderID: info.ID, LeaderAddress: info.Address}
}

// current is this node's leadership if it still believes it leads.
func (n *Node) current() *leadership {
	l := n.lead.Load()
	if l == nil {
		return nil
	}
	select {
	case <-l.session.Done():
		return nil
	default:
		return l
	}
}

// campaignLoop keeps this node a candidate: like every Raft voter, every
// node stands for election all the time, so a lost leader is replaced
// without anyone calling Campaign.
func (n *Node) campaignLoop() {
	defer n.wg.Done()
	val, _ := json.Marshal(nodeInfo{ID: n.opts.NodeID, Address: n.opts.Address})
	backoff := newBackoff()
	var session *concurrency.Session
	defer func() {
		if session != nil {
			n.closeSession(session)
		}
	}()
	for !n.closed() {
		if session == nil {
			s, err := concurrency.NewSession(n.client, concurrency.WithTTL(int(n.opts.SessionTTL/time.Second)), concurrency.WithContext(n.ctx))
			if err != nil {
				n.opts.Logger.Warn("etcd session", "err", err)
				backoff.wait(n.ctx)
				continue
			}
			session = s
			n.setSession(s)
		}
		err := n.campaignOnce(session, string(val))
		select {
		case <-session.Done():
			n.opts.Logger.Warn("etcd session expired; starting a new one")
			session = nil
			n.setSession(nil)
		default:
		}
		if err != nil && !n.closed() {
			n.opts.Logger.Warn("etcd campaign", "err", err)
			backoff.wait(n.ctx)
			continue
		}
		backoff.reset()
	}
}

func (n *Node) closeSession(s *concurrency.Session) {
	// Revoking now lets the others take over at once rather than after
	// the TTL; the node's context is gone, so give it its own.
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DialTimeout)
	defer cancel()
	_, _ = n.client.Revoke(ctx, s.Lease())
	s.Orphan()
}

// campaignOnce waits to lead, then holds leadership until the session ends,
// a resignation, or Close.
func (n *Node) campaignOnce(s *concurrency.Session, val string) error {
	e := concurrency.NewElection(s, n.keys.election)
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := e.Campaign(ctx, val); err != nil {
		return err
	}
	l := &leadership{key: e.Key(), token: e.Rev(), session: s}
	// Campaign can return after the lease expired (it waits for the keys
	// before ours, not for ours); leadership starts only if the key holds.
	resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return nil
	}
	n.lead.Store(l)
	n.opts.Logger.Info("leading", "token", l.token)
	n.refreshLeader()
	var reply chan error
	select {
	case <-s.Done():
	case <-n.ctx.Done():
	case reply = <-n.resign:
	}
	n.lead.Store(nil)
	n.refreshLeader()
	rctx, rcancel := context.WithTimeout(context.Background(), n.opts.DialTimeout)
	defer rcancel()
	err = e.Resign(rctx)
	if reply != nil {
		reply <- err
		// Stand again only once another candidate had the chance to win,
		// or this node would win its own resignation back at once.
		n.waitOtherLeader(l.token)
	}
	return nil
}

// waitOtherLeader waits, up to a session TTL, for a leader other than the
// term given up.
func (n *Node) waitOtherLeader(token int64) {
	changes, cancel := n.leaders.watch()
	defer cancel()
	t := time.NewTimer(n.opts.SessionTTL)
	defer t.Stop()
	for {
		select {
		case info, ok := <-changes:
			if !ok || (info.ID != "" && info.Term > uint64(token)) {
				return
			}
		case <-t.C:
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// observeLoop follows who leads: the campaign key with the oldest
// CreateRevision, re-read whenever the election prefix changes.
func (n *Node) observeLoop() {
	defer n.wg.Done()
	backoff := newBackoff()
	for !n.closed() {
		resp, err := n.client.Get(n.ctx, n.keys.election, clientv3.WithFirstCreate()...)
		if err != nil {
			if !n.closed() {
				n.opts.Logger.Warn("etcd: read the leader", "err", err)
			}
			backoff.wait(n.ctx)
			continue
		}
		n.touch()
		n.setObserved(resp)
		wctx, cancel := context.WithCancel(n.ctx)
		wch := n.client.Watch(wctx, n.keys.election, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			n.touch()
			r, err := n.client.Get(n.ctx, n.keys.election, clientv3.WithFirstCreate()...)
			if err != nil {
				break
			}
			n.setObserved(r)
		}
		cancel()
		backoff.reset()
	}
}

// observed is the leader read from etcd, kept for refreshLeader.
type observed struct {
	info consensus.LeaderInfo
	seen bool
}

func (n *Node) setObserved(resp *clientv3.GetResponse) {
	var info consensus.LeaderInfo
	if len(resp.Kvs) > 0 {
		kv := resp.Kvs[0]
		var v nodeInfo
		_ = json.Unmarshal(kv.Value, &v)
		info = consensus.LeaderInfo{ID: v.ID, Address: v.Address, Term: uint64(kv.CreateRevision)}
	}
	n.leaders.mu.Lock()
	prev := n.leaders.observed
	n.leaders.observed = observed{info: info, seen: true}
	n.leaders.mu.Unlock()
	if info.ID != "" && (info.ID != prev.info.ID || info.Term != prev.info.Term) {
		n.metrics.leaderChanges.Inc()
	}
	n.refreshLeader()
}

// refreshLeader combines what etcd says with this node's own leadership:
// Self only while this node holds the key the others see as the leader's.
func (n *Node) refreshLeader() {
	n.leaders.mu.Lock()
	info := n.leaders.observed.info
	n.leaders.mu.Unlock()
	if info.ID == "" {
		// Term stays the last known one, as with Raft between elections.
		info.Term = n.leaders.get().Term
	}
	if l := n.current(); l != nil && uint64(l.token) == info.Term {
		info.Self = true
	}
	n.leaders.set(info)
}

// Leader implements consensus.Leadership.
func (n *Node) Leader() consensus.LeaderInfo { return n.leaders.get() }

// WatchLeader implements consensus.Leadership.
func (n *Node) WatchLeader() (<-chan consensus.LeaderInfo, func()) { return n.leaders.watch() }

// Fence implements consensus.Fencer: a transaction that succeeds only while
// this node's election key exists with its token as CreateRevision (so the
// lease is alive and nobody else leads), then a wait until this node has
// applied every command committed before it.
func (n *Node) Fence(ctx context.Context) (uint64, error) {
	l := n.current()
	if l == nil {
		return 0, n.notLeader()
	}
	if err := n.barrier(ctx, l); err != nil {
		return 0, err
	}
	return uint64(l.token), nil
}

// Barrier implements consensus.Replicated.
func (n *Node) Barrier(ctx context.Context) error {
	l := n.current()
	if l == nil {
		return n.notLeader()
	}
	return n.barrier(ctx, l)
}

func (n *Node) barrier(ctx context.Context, l *leadership) error {
	resp, err := n.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)).
		Then(
			clientv3.OpGet(n.keys.log, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
				clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1)),
			clientv3.OpGet(n.keys.snapshotRev),
		).Commit()
	if err != nil {
		return n.mapErr(ctx, err)
	}
	n.touch()
	if !resp.Succeeded {
		n.lost(l)
		return n.notLeader()
	}
	// The newest command, or the snapshot when it covers more (the log
	// keys it covers are deleted), is what must be applied here first.
	var target int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		target = kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		rev, _ := strconv.ParseInt(string(kvs[0].Value), 10, 64)
		target = max(target, rev)
	}
	n.noteCommit(target)
	return n.waitApplied(ctx, target)
}

// lost ends a leadership that etcd no longer holds (its key is gone while
// the session still looks alive, as after a revoked lease).
func (n *Node) lost(l *leadership) {
	if n.lead.CompareAndSwap(l, nil) {
		n.opts.Logger.Warn("leadership lost", "token", l.token)
		// Ending the session makes the campaign loop start a new one.
		l.session.Orphan()
		n.refreshLeader()
	}
}

func (n *Node) mapErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case n.closed():
		return consensus.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("etcd: %w", err)
}

func (n *Node) waitApplied(ctx context.Context, rev int64) error {
	if n.applied.Load() >= rev {
		return nil
	}
	done := make(chan struct{})
	go func() {
		n.appliedMu.Lock()
		for n.applied.Load() < rev && ctx.Err() == nil && !n.closed() {
			n.appliedCond.Wait()
		}
		n.appliedMu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	// Wake the waiter so it does not outlive the call.
	n.appliedMu.Lock()
	n.appliedCond.Broadcast()
	n.appliedMu.Unlock()
	<-done
	switch {
	case n.applied.Load() >= rev:
		return nil
	case n.closed():
		return consensus.ErrClosed
	}
	return ctx.Err()
}

// Campaign implements consensus.Leadership. Every node stands for election
// all the time, so this only waits until this node wins.
func (n *Node) Campaign(ctx context.Context) (uint64, error) {
	changes, cancel := n.WatchLeader()
	defer cancel()
	retry := time.NewTicker(n.opts.SessionTTL / 2)
	defer retry.Stop()
	for {
		if n.current() != nil {
			token, err := n.Fence(ctx)
			if err == nil {
				return token, nil
			}
			if !errors.Is(err, consensus.ErrNotLeader) {
				return 0, err
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case _, open := <-changes:
			if !open {
				return 0, consensus.ErrClosed
			}
		case <-retry.C:
		}
	}
}

// Resign implements consensus.Leadership: the election key is deleted, the
// next candidate in line takes over, and this node stands again after it.
func (n *Node) Resign(ctx context.Context) error {
	if n.current() == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case n.resign <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return consensus.ErrClosed
	}
	select {
	case err := <-reply:
		return n.mapErr(ctx, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Propose implements consensus.Replicated. The command is put under log/
// in a transaction that succeeds only while this node's election key holds
// its token: a deposed leader's proposal writes nothing and fails with a
// *NotLeaderError, which a caller may retry on the new leader. A failure
// of the request itself leaves the command's fate unknown
// (consensus.ErrLeadershipLost when leadership is gone by then).
func (n *Node) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	l := n.current()
	if l == nil {
		return nil, n.notLeader()
	}
	key := fmt.Sprintf("%s%016x-%016x", n.keys.log, l.token, n.seq.Add(1))
	ch := make(chan result, 1)
	n.pendingMu.Lock()
	n.pending[key] = ch
	n.pendingMu.Unlock()
	defer func() {
		n.pendingMu.Lock()
		delete(n.pending, key)
		n.pendingMu.Unlock()
	}()
	resp, err := n.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)).
		Then(clientv3.OpPut(key, string(cmd))).
		Commit()
	if err != nil {
		if n.current() != l && !n.closed() {
			return nil, fmt.Errorf("%w: %w", consensus.ErrLeadershipLost, err)
		}
		return nil, n.mapErr(ctx, err)
	}
	n.touch()
	if !resp.Succeeded {
		n.lost(l)
		return nil, n.notLeader()
	}
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.ctx.Done():
		return nil, consensus.ErrClosed
	}
}

// Subscribe implements consensus.Replicated.
func (n *Node) Subscribe(buffer int) (<-chan consensus.Applied, func()) {
	return n.hub.subscribe(buffer)
}

func (n *Node) failPending(err error) {
	n.pendingMu.Lock()
	defer n.pendingMu.Unlock()
	for k, ch := range n.pending {
		select {
		case ch <- result{err: err}:
		default:
		}
		delete(n.pending, k)
	}
}

// errMembershipByLease is why Join and Remove are not this backend's: etcd
// is the consensus, and a vigil node is in the cluster while its lease is.
var errMembershipByLease = fmt.Errorf("%w: with etcd, membership follows the nodes' leases: a node joins by starting on the same endpoints and prefix and leaves by stopping", errors.ErrUnsupported)

// Join implements consensus.Membership; see errMembershipByLease.
func (n *Node) Join(context.Context, consensus.Peer) error { return errMembershipByLease }

// Remove implements consensus.Membership; see errMembershipByLease.
func (n *Node) Remove(context.Context, string) error { return errMembershipByLease }

// Status implements consensus.Membership: the members are the live member
// keys, each with the progress its node last wrote; this node's own entry
// is current. A member's LastContact is when it last heard from etcd (the
// leader of the consensus here), zero on the leader as with Raft.
func (n *Node) Status(ctx context.Context) (consensus.Status, error) {
	resp, err := n.client.Get(ctx, n.keys.members, clientv3.WithPrefix())
	if err != nil {
		return consensus.Status{}, n.mapErr(ctx, err)
	}
	n.touch()
	info := n.leaders.get()
	st := consensus.Status{Leader: info.ID, Term: info.Term}
	self := false
	for _, kv := range resp.Kvs {
		var v nodeInfo
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			continue
		}
		m := consensus.Member{ID: v.ID, Address: v.Address, State: consensus.StateFollower, Voter: true,
			CommitIndex: uint64(v.CommitIndex), AppliedIndex: uint64(v.AppliedIndex)}
		if v.LastContact != 0 {
			m.LastContact = time.Unix(0, v.LastContact)
		}
		if v.ID == info.ID {
			m.State = consensus.StateLeader
		}
		if v.ID == n.opts.NodeID {
			self = true
			n.localMember(&m)
		}
		if m.State == consensus.StateLeader {
			m.LastContact = time.Time{}
		}
		st.Members = append(st.Members, m)
	}
	if !self {
		// Between sessions this node has no member key but still answers.
		m := consensus.Member{ID: n.opts.NodeID, Address: n.opts.Address, Voter: true}
		n.localMember(&m)
		st.Members = append(st.Members, m)
	}
	return st, nil
}

func (n *Node) localMember(m *consensus.Member) {
	m.Local = true
	m.State = consensus.StateFollower
	if n.current() != nil {
		m.State = consensus.StateLeader
	}
	if n.closed() {
		m.State = consensus.StateShutdown
	}
	m.CommitIndex = uint64(n.commit.Load())
	m.AppliedIndex = uint64(n.applied.Load())
	if c := n.lastContact.Load(); c != 0 {
		m.LastContact = time.Unix(0, c)
	}
}

var errNoSession = errors.New("no etcd session")

func (n *Node) setSession(s *concurrency.Session) {
	n.sessionMu.Lock()
	n.session = s
	n.sessionMu.Unlock()
	select {
	case n.sessionChanged <- struct{}{}:
	default:
	}
}

func (n *Node) getSession() (*concurrency.Session, error) {
	n.sessionMu.Lock()
	defer n.sessionMu.Unlock()
	if n.session == nil {
		return nil, errNoSession
	}
	return n.session, nil
}

// memberLoop keeps this node's member key, under the session's lease, with
// its progress, so Status on any node shows every node's.
func (n *Node) memberLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.opts.HeartbeatInterval)
	defer tick.Stop()
	key := n.keys.members + n.opts.NodeID
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-n.sessionChanged:
		}
		s, err := n.getSession()
		if err != nil {
			continue
		}
		v, _ := json.Marshal(nodeInfo{
			ID: n.opts.NodeID, Address: n.opts.Address,
			CommitIndex: n.commit.Load(), AppliedIndex: n.applied.Load(), LastContact: time.Now().UnixNano(),
		})
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.HeartbeatInterval)
		_, err = n.client.Put(ctx, key, string(v), clientv3.WithLease(s.Lease()))
		cancel()
		if err == nil {
			n.touch()
		}
	}
}

// backoff spaces retries against an etcd that fails.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.d = min(2*b.d, 2*time.Second)
}

// tokenOf is the log key's token, the Term of an Applied.
func tokenOf(key, logPrefix string) uint64 {
	name := strings.TrimPrefix(key, logPrefix)
	tok, _, _ := strings.Cut(name, "-")
	t, _ := strconv.ParseUint(tok, 16, 64)
	return t
}
