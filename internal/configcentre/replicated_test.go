package configcentre

import (
	"context"
	"errors"
	"testing"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

func TestReplicated(t *testing.T) {
	m := NewMachine()
	log := consensustest.NewMemory(m)
	r := &Replicated{Log: log, Machine: m}
	ctx := context.Background()
	res, err := r.Propose(ctx, put("a", TypeText))
	if err != nil || res.Version != 1 || res.Seq != 1 || res.MD5 != MD5("a") {
		t.Fatalf("put: %+v %v", res, err)
	}
	if err := m.WaitApplied(ctx, res.Seq); err != nil {
		t.Fatal(err)
	}
	// Refusals come back through the log with their sentinel.
	if _, err := r.Propose(ctx, Command{Op: OpAbort, Item: item}); !errors.Is(err, ErrNotFound) {
		t.Errorf("abort without gray: %v", err)
	}
	if _, err := r.Propose(ctx, put("{", TypeJSON)); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid JSON: %v", err)
	}
	if m.Seq() != 1 {
		t.Errorf("refused commands counted: seq %d", m.Seq())
	}
	log.Depose()
	if _, err := r.Propose(ctx, put("b", TypeText)); !errors.Is(err, consensus.ErrNotLeader) {
		t.Errorf("on a follower: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.WaitApplied(cctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitApplied past the end: %v", err)
	}
}
