package etcd

import (
	"context"
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
	"github.com/vigil-observability/vigil/internal/consensus/fanout"
	"github.com/vigil-observability/vigil/internal/consensus/internal/backend"
)

// Node is one vigil node of a cluster kept in etcd.
type Node struct {
	opts   Options
	client *clientv3.Client
	keys   keys

	hub     *fanout.Subscribers[consensus.Applied]
	leaders *fanout.Latest[consensus.LeaderInfo]
	metrics *backend.Metrics

	// observed is the leader as last read from etcd, before this node's own
	// view is added to it.
	observedMu sync.Mutex
	observed   observed

	// lead is this node's leadership while it holds it, nil otherwise.
	lead atomic.Pointer[leadership]
	// openRev is etcd's revision when this node opened, and gaveUp the
	// token of its last leadership, once ended: an election key with this
	// node's id and a revision up to either is not one it leads with (a
	// previous run's, or one it gave up that etcd has not expired yet).
	openRev, gaveUp atomic.Int64
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
	_ consensus.Leadership  = (*Node)(nil)
	_ consensus.Replicated  = (*Node)(nil)
	_ consensus.Membership  = (*Node)(nil)
	_ consensus.ReadIndexer = (*Node)(nil)
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
	n.hub = fanout.NewSubscribers[consensus.Applied]()
	n.leaders = fanout.NewLatest(consensus.LeaderInfo{}, fanout.StaleLeader)
	fail := func(err error) (*Node, error) {
		cancel()
		_ = client.Close()
		return nil, err
	}
	if err := n.checkCluster(); err != nil {
		return fail(err)
	}
	n.metrics = newMetrics(n)
	if err := n.metrics.Register(opts.Registerer); err != nil {
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
	n.openRev.Store(resp.Header.Revision)
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
		n.hub.Close()
		n.leaders.Close()
		n.failPending(consensus.ErrClosed)
		n.metrics.Unregister(n.opts.Registerer)
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
	info := n.leaders.Get()
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

func (n *Node) mapErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case n.closed():
		return consensus.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: etcd: %w", consensus.ErrUnavailable, err)
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
	return n.hub.Subscribe(buffer)
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
