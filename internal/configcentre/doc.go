// Package configcentre is the configuration centre's state: items
// addressed as namespace/group/key, each with its full history of
// versions, at most one gray rollout, and the list of change events every
// write leaves.
//
// The state changes only by commands applied in order (Machine.Apply), and
// applying is deterministic: a command carries its own time and author,
// and nothing reads a clock, randomness or a file. That is what lets the
// same Machine sit behind the cluster's replicated log
// (consensus.StateMachine) or behind Local, the single-node store that
// appends each command to a file and syncs it before the write is
// acknowledged.
//
// Versions count per item and never go back: every published content,
// formal or gray, takes the next one. Promote publishes the gray's content
// as a new formal version; rollback republishes an old version's content
// as a new one. History keeps every version.
package configcentre
