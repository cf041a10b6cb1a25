package etcd

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/internal/backend"
)

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
	// The lease's deadline as this node can vouch for it: renewed now, it
	// lives in etcd at least TTL from when the renewal was sent.
	sent := time.Now()
	ka, err := n.client.KeepAliveOnce(ctx, s.Lease())
	if err != nil {
		return err
	}
	valid := sent.Add(time.Duration(ka.TTL) * time.Second)
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
	guarded := make(chan struct{})
	go func() {
		defer close(guarded)
		n.leaseGuard(ctx, l, valid)
	}()
	defer func() {
		cancel()
		<-guarded
	}()
	var reply chan error
	select {
	case <-s.Done():
	case <-n.ctx.Done():
	case reply = <-n.resign:
	}
	n.endedLeadership(l)
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

// leaseGuard ends leadership l before etcd can expire its lease, which
// would let another node lead. The session alone does not: it counts the
// lease alive until TTL after the last keepalive answer it got, and checks
// that only every half second, while etcd expires it TTL after the last
// keepalive it received; a leader cut off from etcd would go on calling
// itself leader after another was elected. So the guard renews the lease
// itself every quarter TTL, and holds that it lives TTL from when the
// newest successful renewal was sent, less a fifth of the TTL for a timer
// that fires late on a busy machine; valid is that deadline for the
// renewal made before leading began. It returns when ctx ends.
func (n *Node) leaseGuard(ctx context.Context, l *leadership, valid time.Time) {
	margin := n.opts.SessionTTL / 5
	for {
		left := time.Until(valid) - margin
		if left <= 0 {
			n.opts.Logger.Warn("etcd did not renew the leader's lease in time; no longer leading", "token", l.token)
			n.lost(l)
			return
		}
		t := time.NewTimer(min(left, n.opts.SessionTTL/4))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// A renewal still unanswered when the lease may be gone is moot.
		rctx, cancel := context.WithDeadline(ctx, valid.Add(-margin))
		sent := time.Now()
		ka, err := n.client.KeepAliveOnce(rctx, l.session.Lease())
		cancel()
		if err == nil && ka.TTL > 0 {
			n.touch()
			if until := sent.Add(time.Duration(ka.TTL) * time.Second); until.After(valid) {
				valid = until
			}
		}
	}
}

// waitOtherLeader waits, up to a session TTL, for a leader other than the
// term given up.
func (n *Node) waitOtherLeader(token int64) {
	changes, cancel := n.leaders.Watch()
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
	n.observedMu.Lock()
	prev := n.observed
	n.observed = observed{info: info, seen: true}
	n.observedMu.Unlock()
	if info.ID != "" && (info.ID != prev.info.ID || info.Term != prev.info.Term) {
		n.metrics.LeaderChanges.Inc()
	}
	n.refreshLeader()
}

// refreshLeader combines what etcd says with this node's own leadership:
// Self only while this node holds the key the others see as the leader's.
func (n *Node) refreshLeader() {
	n.observedMu.Lock()
	info := n.observed.info
	n.observedMu.Unlock()
	if info.ID == "" {
		// Term stays the last known one, as with Raft between elections.
		info.Term = n.leaders.Get().Term
	}
	if l := n.current(); l != nil && uint64(l.token) == info.Term {
		info.Self = true
	} else if info.ID == n.opts.NodeID && (int64(info.Term) <= n.openRev.Load() || int64(info.Term) <= n.gaveUp.Load()) {
		// etcd still names this node, by a key it does not lead with: a
		// previous run's, or a leadership this node ended (cut off from
		// etcd) that etcd has not expired yet. Naming itself would send
		// the others' silence writes here, to be refused; name none, as
		// during an election, until etcd names the next leader.
		info = consensus.LeaderInfo{Term: info.Term}
	}
	n.leaders.Set(info)
}

// Leader implements consensus.Leadership.
func (n *Node) Leader() consensus.LeaderInfo { return n.leaders.Get() }

// WatchLeader implements consensus.Leadership.
func (n *Node) WatchLeader() (<-chan consensus.LeaderInfo, func()) { return n.leaders.Watch() }

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
	// The newest command, or the snapshot when it covers more, is what
	// must be applied here first.
	target := headRevision(resp)
	n.noteCommit(target)
	return n.waitApplied(ctx, target)
}

// ReadIndex implements consensus.ReadIndexer on every node, leader or
// not: etcd itself is the log, and its revisions are the same for every
// node. A linearizable read of the log's head (and of the snapshot's
// revision, when it covers more) is a revision at or after every command
// committed before the call.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	resp, err := n.client.Txn(ctx).Then(
		clientv3.OpGet(n.keys.log, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1)),
		clientv3.OpGet(n.keys.snapshotRev),
	).Commit()
	if err != nil {
		return 0, n.mapErr(ctx, err)
	}
	n.touch()
	target := headRevision(resp)
	n.noteCommit(target)
	return uint64(target), nil
}

// WaitApplied implements consensus.ReadIndexer.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.waitApplied(ctx, int64(index))
}

// AppliedIndex is the revision of the last command (or snapshot) the
// local state machine applied, as ReadIndex and WaitApplied count.
func (n *Node) AppliedIndex() uint64 { return uint64(n.applied.Load()) }

// headRevision is the revision a barrier or a read waits for: the newest
// command's, or the snapshot's when it covers more (the log keys it
// covers are deleted). resp holds the log's newest key and the snapshot
// revision, in that order.
func headRevision(resp *clientv3.TxnResponse) int64 {
	var target int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		target = kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		rev, _ := strconv.ParseInt(string(kvs[0].Value), 10, 64)
		target = max(target, rev)
	}
	return target
}

// endedLeadership records l's token as one this node no longer leads with.
func (n *Node) endedLeadership(l *leadership) {
	for {
		g := n.gaveUp.Load()
		if l.token <= g || n.gaveUp.CompareAndSwap(g, l.token) {
			return
		}
	}
}

// lost ends a leadership that etcd no longer holds (its key is gone while
// the session still looks alive, as after a revoked lease).
func (n *Node) lost(l *leadership) {
	n.endedLeadership(l)
	if n.lead.CompareAndSwap(l, nil) {
		n.opts.Logger.Warn("leadership lost", "token", l.token)
		// Ending the session makes the campaign loop start a new one.
		l.session.Orphan()
		n.refreshLeader()
	}
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
	return backend.Campaign(ctx, n, func() bool { return n.current() != nil }, n.opts.SessionTTL/2)
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
