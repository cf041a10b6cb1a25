package configcentre

import "context"

// Log is a replicated log whose state machine applies this package's
// commands to a Machine (through statemux, addressed to MachineName): its
// Propose returns what Machine.Apply returned, on the leader, and a
// *consensus.NotLeaderError elsewhere.
type Log interface {
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
}

// Replicated proposes commands on a cluster's log. Every node applies
// them to its own Machine; reads are of the local Machine.
type Replicated struct {
	Log     Log
	Machine *Machine
}

// Propose refuses what is wrong whatever the state (a bad name, content
// that does not parse), then proposes c. What depends on the state (an
// unknown item, a gray already active) is the leader's Apply to decide:
// this node's state may be behind the leader's.
func (r *Replicated) Propose(ctx context.Context, c Command) (Result, error) {
	if err := c.Item.Validate(); err != nil {
		return Result{}, err
	}
	if c.Op == OpPut {
		if err := CheckContent(c.ContentType, c.Content); err != nil {
			return Result{}, err
		}
	}
	b, err := EncodeCommand(c)
	if err != nil {
		return Result{}, err
	}
	out, err := r.Log.Propose(ctx, b)
	if err != nil {
		return Result{}, err
	}
	return DecodeResult(out)
}
