package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors shared by every backend.
var (
	// ErrNotLeader: the operation needs the leader and this node is not it.
	// Backends return a *NotLeaderError, which matches it with errors.Is.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrLeadershipLost: the node lost leadership while a proposal was in
	// flight; the command may or may not have been committed, so a caller
	// must not assume either (make commands idempotent, or read back).
	ErrLeadershipLost = errors.New("consensus: leadership lost while the command was in flight")
	// ErrUnavailable: the backend could not be asked, or did not answer
	// (an etcd whose own leader changed, a timeout). As for
	// ErrLeadershipLost, a proposal may or may not have been committed;
	// the same call may succeed when retried.
	ErrUnavailable = errors.New("consensus: backend unavailable")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("consensus: node is closed")
	// ErrClusterMismatch: the data directory belongs to another cluster, or
	// the peers given disagree with the membership stored in it.
	ErrClusterMismatch = errors.New("consensus: data directory belongs to another cluster")
)

// NotLeaderError names the leader this node knows of (empty when none is
// known, as during an election), so a caller can send the request there.
type NotLeaderError struct {
	LeaderID      string
	LeaderAddress string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return ErrNotLeader.Error() + " (no leader known)"
	}
	return fmt.Sprintf("%s (leader is %s at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddress)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Peer is one member of the cluster as configured.
type Peer struct {
	ID      string
	Address string
}

// LeaderInfo is who leads, as this node knows it. ID is empty while no
// leader is known. Term is this node's current term, which is the leader's
// fencing token when ID is set.
type LeaderInfo struct {
	ID      string
	Address string
	Term    uint64
	// Self is true when this node is the leader.
	Self bool
}

// Fencer is the check a leader-only action makes before acting: the token
// (the term this node leads in) if a majority still follows this node and its
// state is caught up, otherwise an error matching ErrNotLeader. Safe for
// concurrent use.
type Fencer interface {
	Fence(ctx context.Context) (token uint64, err error)
}

// Leadership is how a component runs only on the leader. Safe for concurrent
// use.
type Leadership interface {
	Fencer
	// Campaign blocks until this node leads (and Fence would succeed) and
	// returns the token, or until ctx ends.
	Campaign(ctx context.Context) (token uint64, err error)
	// Resign hands leadership to another node if this node leads; on a
	// follower it does nothing.
	Resign(ctx context.Context) error
	// Leader is who leads as this node currently knows it, without any
	// network round trip; it can be stale (use Fence before acting).
	Leader() LeaderInfo
	// WatchLeader delivers the current LeaderInfo and then each change.
	// Changes coalesce: a slow reader gets the latest value, never a queue,
	// so the term it reads is never older than one already delivered. The
	// channel is closed by cancel or when the node closes.
	WatchLeader() (changes <-chan LeaderInfo, cancel func())
}

// StateMachine is supplied by the consumer. The backend calls Apply,
// Snapshot and Restore from one goroutine, never concurrently with each
// other.
type StateMachine interface {
	// Apply applies one committed command. It must be deterministic: every
	// node applies the same commands in the same order and must reach the
	// same state, so it may not read clocks, randomness or local files. What
	// it returns goes back to Propose on the node that proposed the command
	// (an error here is a result, like "no such silence", not a failure of
	// the log; it must leave the state as every other node will).
	Apply(cmd []byte) ([]byte, error)
	// Snapshot captures the state as of the last Apply and returns a function
	// that writes it. Snapshot itself must be quick (copy, or take an
	// immutable view); the returned function runs concurrently with later
	// Applies.
	Snapshot() (SnapshotFunc, error)
	// Restore replaces the whole state with one written by a SnapshotFunc.
	Restore(r io.Reader) error
}

// SnapshotFunc writes a state captured by StateMachine.Snapshot.
type SnapshotFunc func(w io.Writer) error

// Applied is one change to the local state machine, delivered to
// subscribers after it is applied.
type Applied struct {
	// Index and Term are the command's position in the log; zero for a
	// restore.
	Index, Term uint64
	// Cmd is the command applied (shared with every subscriber: read it,
	// do not change it); nil for a restore.
	Cmd []byte
	// Restored is true when the whole state was replaced from a snapshot.
	Restored bool
}

// Replicated is the replicated log in front of a StateMachine. Safe for
// concurrent use.
type Replicated interface {
	// Propose appends cmd to the log and returns what the local
	// StateMachine's Apply returned for it, once it is committed and applied
	// here. On a follower it returns a *NotLeaderError. If ctx ends first the
	// command may still be applied later.
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
	// Barrier, on the leader, confirms leadership and returns once everything
	// committed before the call is applied locally: a read of the local state
	// machine after it is linearizable. On a follower it returns a
	// *NotLeaderError.
	Barrier(ctx context.Context) error
	// Subscribe delivers each change applied to the local state machine
	// after the call, in order. A subscriber that lets buffer changes pile up
	// is dropped (its channel closed) rather than holding back the log; it
	// can re-read the state and subscribe again. cancel closes the channel.
	Subscribe(buffer int) (applied <-chan Applied, cancel func())
}

// ReadIndexer is how a node serves linearizable reads from its local state
// machine (the read index of the Raft paper, section 6.4): ReadIndex names a
// position in the log that every command committed before the call is at
// or below, confirmed with a quorum after the call began; once WaitApplied
// returns for it, a read of the local state machine reflects every write
// acknowledged before the ReadIndex call. Positions are the backend's and
// comparable between its nodes. Safe for concurrent use.
type ReadIndexer interface {
	// ReadIndex returns the position. Where only the leader can tell (raft),
	// a follower returns a *NotLeaderError naming the leader to ask, which
	// answers for it with its own ReadIndex.
	ReadIndex(ctx context.Context) (uint64, error)
	// WaitApplied returns once the local state machine has applied the log
	// up to index, or when ctx ends.
	WaitApplied(ctx context.Context, index uint64) error
}

// Member is one node of the cluster as seen from the node answering.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// State is leader, follower, candidate, shutdown, or unknown for a
	// remote member whose state this node cannot see.
	State string `json:"state"`
	// Voter is false for a non-voting member.
	Voter bool `json:"voter"`
	// CommitIndex, AppliedIndex and LastContact (the last time this member
	// heard from the leader; zero on the leader and when unknown) are only
	// known for the member answering (Local); other members report their own.
	CommitIndex  uint64    `json:"commit_index"`
	AppliedIndex uint64    `json:"applied_index"`
	LastContact  time.Time `json:"last_contact"`
	Local        bool      `json:"-"`
}

// Member states.
const (
	StateLeader    = "leader"
	StateFollower  = "follower"
	StateCandidate = "candidate"
	StateShutdown  = "shutdown"
	StateUnknown   = "unknown"
)

// Status is the cluster as this node sees it.
type Status struct {
	Leader  string   `json:"leader"`
	Term    uint64   `json:"term"`
	Members []Member `json:"members"`
}

// Membership reads and changes who is in the cluster. Join and Remove must
// run on the leader (*NotLeaderError otherwise). Safe for concurrent use.
type Membership interface {
	Status(ctx context.Context) (Status, error)
	// Join adds p as a voter; it then catches up from the leader.
	Join(ctx context.Context, p Peer) error
	// Remove takes the member with this id out of the cluster.
	Remove(ctx context.Context, id string) error
}
