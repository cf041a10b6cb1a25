package statemux_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence/silencepb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/consensus/statemux"
)

var update = flag.Bool("update", false, "write testdata/legacy-* with this version's alerting state, unmuxed")

// kv is a state machine of "key=value" commands.
type kv struct {
	m     map[string]string
	reset int
}

func newKV() *kv { return &kv{m: map[string]string{}} }

func (k *kv) Apply(cmd []byte) ([]byte, error) {
	key, val, ok := strings.Cut(string(cmd), "=")
	if !ok {
		return nil, errors.New("kv: not key=value")
	}
	k.m[key] = val
	return []byte("ok " + key), nil
}

func (k *kv) Snapshot() (consensus.SnapshotFunc, error) {
	b, err := json.Marshal(k.m)
	return func(w io.Writer) error { _, err := w.Write(b); return err }, err
}

func (k *kv) Restore(r io.Reader) error {
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return err
	}
	k.m = m
	return nil
}

func (k *kv) Reset() error { k.m = map[string]string{}; k.reset++; return nil }

func newMux(t *testing.T, machines map[string]consensus.StateMachine, legacy string) *statemux.Mux {
	t.Helper()
	m, err := statemux.New(statemux.Options{Machines: machines, Legacy: legacy})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyDispatches(t *testing.T) {
	a, b := newKV(), newKV()
	m := newMux(t, map[string]consensus.StateMachine{"a": a, "b": b}, "a")
	for _, tc := range []struct {
		name    string
		cmd     []byte
		want    string
		wantErr error
	}{
		{"to a", statemux.Command("a", []byte("x=1")), "ok x", nil},
		{"to b", statemux.Command("b", []byte("y=2")), "ok y", nil},
		{"without a header: the legacy machine", []byte("z=3"), "ok z", nil},
		{"an unknown machine", statemux.Command("c", []byte("x=1")), "", statemux.ErrUnknownMachine},
		{"a later header version", []byte{0, 9, 1, 'a', 'x'}, "", statemux.ErrBadFormat},
		{"a name longer than the command", []byte{0, 1, 5, 'a'}, "", statemux.ErrBadFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.Apply(tc.cmd)
			if !errors.Is(err, tc.wantErr) || string(res) != tc.want {
				t.Fatalf("Apply = %q, %v; want %q, %v", res, err, tc.want, tc.wantErr)
			}
		})
	}
	if want := map[string]string{"x": "1", "z": "3"}; !maps.Equal(a.m, want) {
		t.Errorf("a = %v, want %v", a.m, want)
	}
	if want := map[string]string{"y": "2"}; !maps.Equal(b.m, want) {
		t.Errorf("b = %v, want %v", b.m, want)
	}
	noLegacy := newMux(t, map[string]consensus.StateMachine{"a": newKV()}, "")
	if _, err := noLegacy.Apply([]byte("x=1")); !errors.Is(err, statemux.ErrBadFormat) {
		t.Errorf("a command without a header and no legacy machine: %v, want ErrBadFormat", err)
	}
}

func snapshot(t *testing.T, sm consensus.StateMachine) []byte {
	t.Helper()
	write, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	a, b := newKV(), newKV()
	m := newMux(t, map[string]consensus.StateMachine{"a": a, "b": b}, "")
	big := strings.Repeat("v", 200<<10) // several chunks
	for _, cmd := range [][]byte{statemux.Command("a", []byte("x=1")), statemux.Command("b", []byte("big="+big))} {
		if _, err := m.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	snap := snapshot(t, m)

	a2, b2 := newKV(), newKV()
	b2.m["stale"] = "gone after the restore"
	if err := newMux(t, map[string]consensus.StateMachine{"a": a2, "b": b2}, "").Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(a2.m, a.m) || !maps.Equal(b2.m, b.m) {
		t.Errorf("restored a=%d keys b=%d keys, want a=%d b=%d", len(a2.m), len(b2.m), len(a.m), len(b.m))
	}

	for _, tc := range []struct {
		name string
		snap []byte
		into map[string]consensus.StateMachine
		want error
	}{
		{"a section for a machine not run", snap, map[string]consensus.StateMachine{"a": newKV()}, statemux.ErrUnknownMachine},
		{"truncated in a section", snap[:len(snap)/2], map[string]consensus.StateMachine{"a": newKV(), "b": newKV()}, statemux.ErrBadFormat},
		{"truncated before the end mark", snap[:len(snap)-1], map[string]consensus.StateMachine{"a": newKV(), "b": newKV()}, statemux.ErrBadFormat},
		{"not a mux snapshot, no legacy machine", []byte(`{"x":"1"}`), map[string]consensus.StateMachine{"a": newKV()}, statemux.ErrBadFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := newMux(t, tc.into, "").Restore(bytes.NewReader(tc.snap)); !errors.Is(err, tc.want) {
				t.Fatalf("Restore: %v, want %v", err, tc.want)
			}
		})
	}
}

// A machine added after a snapshot was written restores to empty: the
// snapshot is of a log in which it had no commands.
func TestRestoreOlderSnapshotResetsNewMachine(t *testing.T) {
	a := newKV()
	old := newMux(t, map[string]consensus.StateMachine{"a": a}, "")
	if _, err := old.Apply(statemux.Command("a", []byte("x=1"))); err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, old)
	a2, added := newKV(), newKV()
	added.m["k"] = "v"
	if err := newMux(t, map[string]consensus.StateMachine{"a": a2, "added": added}, "").Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if a2.m["x"] != "1" || len(added.m) != 0 || added.reset != 1 {
		t.Errorf("a = %v, added = %v (reset %d times); want x=1 and added reset once to empty", a2.m, added.m, added.reset)
	}
}

// The log and snapshots written before the mux: alerting commands and the
// alerting snapshot, unframed. testdata holds what that version wrote.
func TestLegacyAlertingLogAndSnapshot(t *testing.T) {
	cmdFile, snapFile := filepath.Join("testdata", "legacy-silence.cmd"), filepath.Join("testdata", "legacy-alerting.snapshot")
	if *update {
		writeLegacy(t, cmdFile, snapFile)
	}
	legacyCmd, err := os.ReadFile(cmdFile)
	if err != nil {
		t.Fatal(err)
	}
	legacySnap, err := os.ReadFile(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		load func(m *statemux.Mux) error
	}{
		{"a command replayed from the log", func(m *statemux.Mux) error { _, err := m.Apply(legacyCmd); return err }},
		{"a snapshot restored", func(m *statemux.Mux) error { return m.Restore(bytes.NewReader(legacySnap)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, err := alerting.NewReplicatedState(alerting.ReplicatedStateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			other := newKV()
			other.m["k"] = "v"
			m := newMux(t, map[string]consensus.StateMachine{"alerting": state, "other": other}, "alerting")
			if err := tc.load(m); err != nil {
				t.Fatal(err)
			}
			sils, _, err := state.Silences().Query(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(sils) != 1 || sils[0].Comment != legacyComment {
				t.Fatalf("silences after loading the legacy data: %v, want the one with comment %q", sils, legacyComment)
			}
			// And it goes on into the new format.
			snap := snapshot(t, m)
			state2, _ := alerting.NewReplicatedState(alerting.ReplicatedStateOptions{})
			m2 := newMux(t, map[string]consensus.StateMachine{"alerting": state2, "other": newKV()}, "alerting")
			if err := m2.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatal(err)
			}
			if sils, _, _ := state2.Silences().Query(context.Background()); len(sils) != 1 {
				t.Errorf("after a round trip through the mux's snapshot: %d silences, want 1", len(sils))
			}
		})
	}
}

const legacyComment = "written before the state mux"

// writeLegacy records a silence write's command and a snapshot as the
// alerting state writes them on a log of its own.
func writeLegacy(t *testing.T, cmdFile, snapFile string) {
	state, err := alerting.NewReplicatedState(alerting.ReplicatedStateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := consensustest.NewMemory(state)
	applied, cancel := log.Subscribe(4)
	defer cancel()
	repl, err := alerting.NewReplicator(alerting.ReplicatorOptions{State: state, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// Ends long after any test run, so the fixture never expires.
	end := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = repl.Do(context.Background(), alerting.SilenceOp{Silence: &silencepb.Silence{
		Matchers: []*silencepb.Matcher{{Name: "alertname", Pattern: "Legacy", Type: silencepb.Matcher_EQUAL}},
		StartsAt: timestamppb.Now(), EndsAt: timestamppb.New(end), CreatedBy: "test", Comment: legacyComment,
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := <-applied
	if err := os.WriteFile(cmdFile, a.Cmd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snapFile, snapshot(t, state), 0o644); err != nil {
		t.Fatal(err)
	}
}
