package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/vigil-observability/vigil/internal/consensus"
)

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
	info := n.leaders.Get()
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
