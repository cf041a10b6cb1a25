package etcd

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// applyLoop brings the local state machine up to etcd's and keeps it there:
// a catch-up read (snapshot if it covers more than was applied, then the
// commands after), then a watch on log/ from the revision that read saw.
// A watch that fails, or falls behind etcd's compaction, ends in another
// catch-up read.
func (n *Node) applyLoop() {
	defer n.wg.Done()
	backoff := newBackoff()
	for !n.closed() {
		rev, err := n.catchUp()
		if err != nil {
			if !n.closed() {
				n.opts.Logger.Warn("etcd: catch up with the log", "err", err)
			}
			backoff.wait(n.ctx)
			continue
		}
		backoff.reset()
		n.watchLog(rev)
	}
}

func (n *Node) catchUp() (int64, error) {
	applied := n.applied.Load()
	resp, err := n.client.Txn(n.ctx).Then(
		clientv3.OpGet(n.keys.snapshotRev),
		clientv3.OpGet(n.keys.log, clientv3.WithPrefix(), clientv3.WithMinModRev(applied+1),
			clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend)),
	).Commit()
	if err != nil {
		return 0, err
	}
	n.touch()
	var snapRev int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		snapRev, _ = strconv.ParseInt(string(kvs[0].Value), 10, 64)
	}
	if snapRev > applied {
		// The log keys the snapshot covers may be deleted; restore it.
		if err := n.restore(snapRev); err != nil {
			return 0, err
		}
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) > 0 {
		n.noteCommit(kvs[len(kvs)-1].ModRevision)
	}
	for _, kv := range kvs {
		n.apply(string(kv.Key), kv.Value, kv.ModRevision)
	}
	return resp.Header.Revision, nil
}

// restore reads the snapshot at the revision it was written with, so that
// the data and snapshot_rev agree.
func (n *Node) restore(snapRev int64) error {
	resp, err := n.client.Txn(n.ctx).Then(
		clientv3.OpGet(n.keys.snapshotRev),
		clientv3.OpGet(n.keys.snapshot),
	).Commit()
	if err != nil {
		return err
	}
	var rev int64
	var data []byte
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		rev, _ = strconv.ParseInt(string(kvs[0].Value), 10, 64)
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		data = kvs[0].Value
	}
	if rev < snapRev || data == nil {
		return fmt.Errorf("snapshot at revision %d is not readable (found revision %d)", snapRev, rev)
	}
	if err := n.opts.StateMachine.Restore(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("restore snapshot at revision %d: %w", rev, err)
	}
	// Proposals in flight here have been applied (or not) inside the
	// snapshot, where their results are not to be had.
	n.failPending(errResultInSnapshot)
	n.sinceSnap = 0
	n.noteCommit(rev)
	n.setApplied(rev)
	n.hub.Publish(consensus.Applied{Restored: true})
	n.opts.Logger.Info("restored snapshot", "revision", rev)
	return nil
}

var errResultInSnapshot = fmt.Errorf("%w: this node caught up from a snapshot while the command was in flight", consensus.ErrLeadershipLost)

func (n *Node) watchLog(rev int64) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	wch := n.client.Watch(ctx, n.keys.log, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	for {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				if ok && !n.closed() {
					n.opts.Logger.Info("etcd: log watch ended; catching up", "err", wr.Err())
				}
				return
			}
			n.touch()
			if len(wr.Events) > 0 {
				n.noteCommit(wr.Events[len(wr.Events)-1].Kv.ModRevision)
			}
			for _, ev := range wr.Events {
				n.apply(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			}
		case reply := <-n.snapReqs:
			reply <- n.takeSnapshot()
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) apply(key string, cmd []byte, rev int64) {
	if rev <= n.applied.Load() {
		return
	}
	res, err := n.opts.StateMachine.Apply(cmd)
	n.setApplied(rev)
	n.hub.Publish(consensus.Applied{Index: uint64(rev), Term: tokenOf(key, n.keys.log), Cmd: cmd})
	n.pendingMu.Lock()
	if ch, ok := n.pending[key]; ok {
		ch <- result{res: res, err: err}
		delete(n.pending, key)
	}
	n.pendingMu.Unlock()
	n.sinceSnap++
	if n.opts.SnapshotThreshold > 0 && n.sinceSnap >= n.opts.SnapshotThreshold && n.current() != nil && !n.snapWriting.Load() {
		taken := n.takeSnapshot()
		if taken.err != nil {
			n.opts.Logger.Warn("snapshot", "err", taken.err)
			return
		}
		n.snapWriting.Store(true)
		go func() {
			defer n.snapWriting.Store(false)
			if err := n.writeSnapshot(n.ctx, taken); err != nil && !n.closed() {
				n.opts.Logger.Warn("snapshot", "err", err)
			}
		}()
	}
}

func (n *Node) setApplied(rev int64) {
	n.appliedMu.Lock()
	n.applied.Store(rev)
	n.appliedCond.Broadcast()
	n.appliedMu.Unlock()
}
