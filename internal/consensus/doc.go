// Package consensus is the interface vigil's cluster-wide state and its
// leader-only work are built on, whatever keeps the consensus below it
// (embedded Raft in the raft subpackage; an etcd cluster in the etcd
// subpackage).
//
// # The model
//
// A cluster is a small set of nodes (3 or 5) that agree on one ordered log of
// commands. A consumer supplies a [StateMachine]; [Replicated.Propose] puts a
// command in the log, and every node applies the log's commands to its own
// copy of the state machine in the same order, so every copy goes through
// the same states. Propose returns once the command is committed (stored on
// a majority) and applied on the node that proposed it, with what Apply
// returned there.
//
// Only the leader can append to the log. A follower's Propose does not
// forward: it fails with a [*NotLeaderError] (errors.Is ErrNotLeader) that
// names the leader, because the caller, not this package, knows how to reach
// that node's API (the Raft address is not the HTTP address).
//
// # Fencing tokens
//
// Leadership is held for a term. Terms only grow, and each has at most one
// leader, so the term a node leads in is a fencing token (with Raft the term
// itself; with etcd the revision the leader's election key was created at):
// anything a leader does on the outside (a notification, a write to shared
// storage) carries it, and a receiver that has seen token N drops anything
// carrying less than N. A node learns it was deposed late (it may be
// partitioned away); the token is what keeps its late actions harmless.
//
// [Fencer.Fence] is the check a leader-only action makes just before acting:
// it confirms with a majority that this node still leads (Raft's
// VerifyLeader; with etcd, a transaction that compares the election key) and
// that this node has applied everything committed before its term began (a
// barrier), and returns the token. It fails on a node that has been deposed
// even if that node has not yet heard of the new leader. Leadership can
// still be lost the instant after Fence returns; the token is what makes
// that safe, not the check.
//
// # What is linearizable
//
// Propose is: a command is applied once, at one position in the log, and
// Propose returns only after that. Reads of the local state machine are not
// by themselves: a follower, or a deposed leader, can serve a stale state.
// A read becomes linearizable on any node with a read index
// ([ReadIndexer]): a log position, confirmed with a quorum after the read
// began, that covers every command committed before it; once the node has
// applied up to it ([ReadIndexer.WaitApplied]), its local state holds every
// acknowledged write. On Raft only the leader can name it (after a Fence,
// which costs a heartbeat round, not a log write), so a follower asks the
// leader; on etcd any node reads it from etcd. [Replicated.Barrier] on the
// leader does the same with a log write.
//
// # Snapshots
//
// The log is compacted by snapshots: the StateMachine writes its whole state
// and restores from such a write. A node that restarts, or falls too far
// behind, restores the latest snapshot and then applies the log after it.
package consensus
