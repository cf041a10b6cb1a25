package backend

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Candidate is what Campaign needs of a node that stands for election all
// the time, as every node of both backends does.
type Candidate interface {
	consensus.Fencer
	WatchLeader() (<-chan consensus.LeaderInfo, func())
}

// Campaign implements consensus.Leadership's Campaign for a node that is
// always a candidate: it waits until leading reports true and Fence
// succeeds, checking again on every leader change and every retry (a
// change can be missed between a check and the wait, and Fence can fail
// for a while after an election).
func Campaign(ctx context.Context, c Candidate, leading func() bool, retry time.Duration) (uint64, error) {
	changes, cancel := c.WatchLeader()
	defer cancel()
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		if leading() {
			token, err := c.Fence(ctx)
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
		case <-tick.C:
		}
	}
}
