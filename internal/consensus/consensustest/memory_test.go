package consensustest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// list is a state machine keeping the commands in order.
type list struct{ cmds []string }

func (l *list) Apply(cmd []byte) ([]byte, error) {
	l.cmds = append(l.cmds, string(cmd))
	return []byte(strconv.Itoa(len(l.cmds))), nil
}

func (l *list) Snapshot() (consensus.SnapshotFunc, error) {
	cmds := slices.Clone(l.cmds)
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(cmds) }, nil
}

func (l *list) Restore(r io.Reader) error {
	l.cmds = nil
	return json.NewDecoder(r).Decode(&l.cmds)
}

func TestMemoryFencesAndApplies(t *testing.T) {
	ctx := context.Background()
	sm := &list{}
	m := NewMemory(sm)
	applied, cancel := m.Subscribe(10)
	defer cancel()

	tok, err := m.Fence(ctx)
	if err != nil || tok != 1 {
		t.Fatalf("fence on a new stand-in: %d, %v", tok, err)
	}
	cmd := []byte("a")
	res, err := m.Propose(ctx, cmd)
	if err != nil || string(res) != "1" {
		t.Fatalf("propose: %q, %v", res, err)
	}
	cmd[0] = 'z' // the log keeps its own copy
	if a := <-applied; string(a.Cmd) != "a" || a.Index != 1 || a.Term != 1 {
		t.Errorf("applied %+v", a)
	}

	m.Depose()
	if _, err := m.Fence(ctx); !errors.Is(err, consensus.ErrNotLeader) {
		t.Errorf("fence when deposed: %v", err)
	}
	if _, err := m.Propose(ctx, []byte("b")); !errors.Is(err, consensus.ErrNotLeader) {
		t.Errorf("propose when deposed: %v", err)
	}

	won := make(chan uint64, 1)
	go func() {
		tok, _ := m.Campaign(ctx)
		won <- tok
	}()
	m.Elect()
	select {
	case tok := <-won:
		if tok != 3 {
			t.Errorf("campaign won term %d, want 3 (deposed in 2, elected in 3)", tok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("campaign did not return after Elect")
	}
	if _, err := m.Propose(ctx, []byte("c")); err != nil {
		t.Fatal(err)
	}

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c"}; !slices.Equal(sm.cmds, want) {
		t.Errorf("state after restart %v, want %v", sm.cmds, want)
	}
	st, err := m.Status(ctx)
	if err != nil || st.Term != 3 || st.Members[0].AppliedIndex != 2 {
		t.Errorf("status %+v, %v", st, err)
	}
}
