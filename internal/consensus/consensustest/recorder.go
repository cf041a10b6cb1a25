package consensustest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// ErrRefused is what a Recorder's Apply returns for the command "fail": a
// result of the state machine, not a failure of the log.
var ErrRefused = errors.New("refused by the state machine")

// Recorder is a state machine that keeps every command in the order
// applied, so a backend's tests can compare the order across nodes. A
// command already applied is not applied again: a proposal whose outcome
// was unknown (its leader was lost in flight) may have been committed, and
// the tests retry it, as a real consumer with idempotent commands would.
// Apply returns the command's 1-based position. The zero value is ready to
// use; safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	cmds     []string
	pos      map[string]int
	restores int
}

var _ consensus.StateMachine = (*Recorder)(nil)

// Apply implements consensus.StateMachine.
func (r *Recorder) Apply(cmd []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if string(cmd) == "fail" {
		return nil, ErrRefused
	}
	if p, ok := r.pos[string(cmd)]; ok {
		return []byte(strconv.Itoa(p)), nil
	}
	if r.pos == nil {
		r.pos = make(map[string]int)
	}
	r.cmds = append(r.cmds, string(cmd))
	r.pos[string(cmd)] = len(r.cmds)
	return []byte(strconv.Itoa(len(r.cmds))), nil
}

// Snapshot implements consensus.StateMachine.
func (r *Recorder) Snapshot() (consensus.SnapshotFunc, error) {
	r.mu.Lock()
	cmds := slices.Clone(r.cmds)
	r.mu.Unlock()
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(cmds) }, nil
}

// Restore implements consensus.StateMachine.
func (r *Recorder) Restore(rd io.Reader) error {
	var cmds []string
	if err := json.NewDecoder(rd).Decode(&cmds); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = cmds
	r.pos = make(map[string]int, len(cmds))
	for i, c := range cmds {
		r.pos[c] = i + 1
	}
	r.restores++
	return nil
}

// Commands are the commands applied so far, in order.
func (r *Recorder) Commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

// Restores counts the Restores.
func (r *Recorder) Restores() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restores
}

// WaitCommands polls until r (the state machine of the node called name)
// holds exactly want, and fails the test if it does not within the time
// given. Waiting on every node for the same want is the check that all
// nodes applied the same sequence.
func WaitCommands(t testing.TB, name string, r *Recorder, want []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if slices.Equal(r.Commands(), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := r.Commands()
	t.Fatalf("%s holds %d commands, want %d; first difference: %s", name, len(got), len(want), FirstDifference(got, want))
}

// FirstDifference describes where two sequences of commands part.
func FirstDifference(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d got %q want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// Numbered is n distinct commands, prefix-000, prefix-001 and so on.
func Numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}
