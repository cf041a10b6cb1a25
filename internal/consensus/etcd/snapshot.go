package etcd

import (
	"bytes"
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// snapshotTaken is the state machine's state as of a revision, not yet
// written.
type snapshotTaken struct {
	write consensus.SnapshotFunc
	rev   int64
	err   error
}

// takeSnapshot runs on the apply goroutine, where nothing applies
// concurrently, so rev is exactly the state captured.
func (n *Node) takeSnapshot() snapshotTaken {
	write, err := n.opts.StateMachine.Snapshot()
	if err == nil {
		n.sinceSnap = 0
	}
	return snapshotTaken{write: write, rev: n.applied.Load(), err: err}
}

// Snapshot writes a snapshot now, if this node leads, and deletes the log
// keys it covers; the leader otherwise does so every SnapshotThreshold
// commands.
func (n *Node) Snapshot(ctx context.Context) error {
	if n.current() == nil {
		return n.notLeader()
	}
	reply := make(chan snapshotTaken, 1)
	select {
	case n.snapReqs <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return consensus.ErrClosed
	}
	taken := <-reply
	if taken.err != nil {
		return fmt.Errorf("snapshot: %w", taken.err)
	}
	return n.writeSnapshot(ctx, taken)
}

// writeSnapshot stores the snapshot if this node still leads and it covers
// more than the stored one (snapshot_rev is zero-padded, so etcd's value
// comparison orders it), then deletes the log keys it covers.
func (n *Node) writeSnapshot(ctx context.Context, taken snapshotTaken) error {
	l := n.current()
	if l == nil {
		return n.notLeader()
	}
	var buf bytes.Buffer
	if err := taken.write(&buf); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	resp, err := n.client.Txn(ctx).
		If(
			clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token),
			clientv3.Compare(clientv3.Value(n.keys.snapshotRev), "<", revString(taken.rev)),
		).
		Then(
			clientv3.OpPut(n.keys.snapshot, buf.String()),
			clientv3.OpPut(n.keys.snapshotRev, revString(taken.rev)),
		).Commit()
	if err != nil {
		return fmt.Errorf("write snapshot: %w", n.mapErr(ctx, err))
	}
	if !resp.Succeeded {
		// Deposed, or a newer snapshot is there: either way nothing to do.
		return nil
	}
	n.opts.Logger.Info("snapshot written", "revision", taken.rev, "bytes", buf.Len())
	return n.compactLog(ctx, taken.rev)
}

// maxTxnOps stays under etcd's default --max-txn-ops (128).
const maxTxnOps = 100

// compactLog deletes the log keys at or below rev, now in a snapshot. A
// node still watching them has the events already; one that falls behind
// restores the snapshot.
func (n *Node) compactLog(ctx context.Context, rev int64) error {
	resp, err := n.client.Get(ctx, n.keys.log, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxModRev(rev))
	if err != nil {
		return fmt.Errorf("list covered log keys: %w", n.mapErr(ctx, err))
	}
	ops := make([]clientv3.Op, 0, maxTxnOps)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := n.client.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		if err != nil {
			return fmt.Errorf("delete covered log keys: %w", n.mapErr(ctx, err))
		}
		return nil
	}
	for _, kv := range resp.Kvs {
		ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		if len(ops) == maxTxnOps {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
