package configcentre

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	item = Key{"shop", "payment", "timeout"}
	t0   = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
)

func pct(n int) *int { return &n }

func put(content string, t ContentType) Command {
	return Command{Op: OpPut, Item: item, Content: content, ContentType: t, Author: "ann", Time: t0}
}

// casPut is a put that applies only over formal version v (0: none).
func casPut(content string, v uint64) Command {
	c := put(content, TypeText)
	c.CAS = &v
	return c
}

// TestCASPut: a conditional put applies over the version it names.
func TestCASPut(t *testing.T) {
	m := NewMachine()
	if res := mustApply(t, m, casPut("a", 0)); res.Version != 1 {
		t.Fatalf("create: version %d", res.Version)
	}
	mustApply(t, m, gray("g", Match{Percent: pct(5)})) // version 2, not formal
	if res := mustApply(t, m, casPut("b", 1)); res.Version != 3 {
		t.Fatalf("put over the formal version 1 with a gray active: version %d", res.Version)
	}
}

func gray(content string, m Match) Command {
	return Command{Op: OpGray, Item: item, Content: content, Match: &m, Author: "bob", Time: t0.Add(time.Minute)}
}

func mustApply(t testing.TB, m *Machine, cmds ...Command) Result {
	t.Helper()
	var res Result
	for _, c := range cmds {
		if c.Time.IsZero() {
			c.Time = t0.Add(2 * time.Minute)
		}
		var err error
		if res, err = m.ApplyCommand(c); err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
	}
	return res
}

func TestCheckContent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     ContentType
		content string
		want    error
		reason  string
	}{
		{"text anything", TypeText, "{not: [json", nil, ""},
		{"json object", TypeJSON, `{"a":1}`, nil, ""},
		{"json scalar", TypeJSON, `3`, nil, ""},
		{"json broken", TypeJSON, `{"a":`, ErrInvalid, "not JSON"},
		{"json two values", TypeJSON, `{} {}`, ErrInvalid, "data after"},
		{"json empty", TypeJSON, ``, ErrInvalid, "not JSON"},
		{"yaml map", TypeYAML, "a: 1\nb: [x, y]\n", nil, ""},
		{"yaml empty", TypeYAML, "", nil, ""},
		{"yaml multi-document", TypeYAML, "a: 1\n---\nb: 2\n", nil, ""},
		{"yaml bad indent", TypeYAML, "a: 1\n b: 2\n", ErrInvalid, "not YAML"},
		{"yaml unclosed", TypeYAML, "a: [1, 2\n", ErrInvalid, "line"},
		{"unknown type", "xml", "<a/>", ErrInvalid, "use text, json or yaml"},
		{"at the limit", TypeText, strings.Repeat("x", MaxContentBytes), nil, ""},
		{"over the limit", TypeText, strings.Repeat("x", MaxContentBytes+1), ErrTooLarge, "the limit is 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckContent(tc.typ, tc.content)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %q, want the reason %q", err, tc.reason)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	// The bucket is pinned: a change of hash would move the instances of
	// every running percentage gray.
	if got := InstanceBucket("pod-a"); got != 34 {
		t.Errorf("bucket(pod-a) = %d, want 34 (FNV-1a mod 100)", got)
	}
	labels := map[string]string{"zone": "eu-1", "version": "1.4.0"}
	for _, tc := range []struct {
		name     string
		m        Match
		instance string
		labels   map[string]string
		want     bool
	}{
		{"labels all match", Match{Labels: map[string]string{"zone": "eu-1", "version": "1.4.0"}}, "pod-a", labels, true},
		{"labels one differs", Match{Labels: map[string]string{"zone": "eu-2", "version": "1.4.0"}}, "pod-a", labels, false},
		{"labels one missing", Match{Labels: map[string]string{"region": "eu"}}, "pod-a", labels, false},
		{"label instance is the id", Match{Labels: map[string]string{"instance": "pod-a"}}, "pod-a", nil, true},
		{"label instance other id", Match{Labels: map[string]string{"instance": "pod-a"}}, "pod-b", nil, false},
		{"instances listed", Match{Instances: []string{"pod-b", "pod-a"}}, "pod-a", nil, true},
		{"instances not listed", Match{Instances: []string{"pod-b"}}, "pod-a", nil, false},
		{"instances no id", Match{Instances: []string{"pod-b"}}, "", nil, false},
		{"percent 0", Match{Percent: pct(0)}, "pod-a", nil, false},
		{"percent 100", Match{Percent: pct(100)}, "pod-a", nil, true},
		{"percent above bucket", Match{Percent: pct(35)}, "pod-a", nil, true},
		{"percent at bucket", Match{Percent: pct(34)}, "pod-a", nil, false},
		{"percent no id", Match{Percent: pct(100)}, "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Matches(tc.instance, tc.labels); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPercentCohortShare(t *testing.T) {
	// Over many ids, a percentage gray takes about that share, and a
	// larger percentage keeps everyone a smaller one took.
	in10, in30 := 0, 0
	for i := range 10000 {
		id := "instance-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		a, b := (Match{Percent: pct(10)}).Matches(id, nil), (Match{Percent: pct(30)}).Matches(id, nil)
		if a && !b {
			t.Fatalf("%s is in the 10%% gray but not the 30%% one", id)
		}
		if a {
			in10++
		}
		if b {
			in30++
		}
	}
	if in10 < 800 || in10 > 1200 || in30 < 2700 || in30 > 3300 {
		t.Errorf("10%% took %d and 30%% took %d of 10000", in10, in30)
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []Command
		cmd    Command
		want   error
		reason string
	}{
		{"invalid json", nil, put(`{"a":`, TypeJSON), ErrInvalid, "not JSON"},
		{"invalid yaml", nil, put("a: [", TypeYAML), ErrInvalid, "not YAML"},
		{"huge value", nil, put(strings.Repeat("x", MaxContentBytes+1), TypeText), ErrTooLarge, "limit"},
		{"empty key", nil, Command{Op: OpPut, Item: Key{"a", "b", ""}, ContentType: TypeText}, ErrInvalid, "empty key"},
		{"slash in group", nil, Command{Op: OpPut, Item: Key{"a", "b/c", "d"}, ContentType: TypeText}, ErrInvalid, "path segment"},
		{"unknown op", nil, Command{Op: "delete", Item: item}, ErrInvalid, "operation"},
		{"gray on unknown item", nil, gray("x", Match{Percent: pct(5)}), ErrNotFound, "needs a published item"},
		{"two grays at once", []Command{put("a", TypeText), gray("b", Match{Percent: pct(5)})}, gray("c", Match{Percent: pct(5)}), ErrConflict, "already has an active gray"},
		{"percent over 100", []Command{put("a", TypeText)}, gray("b", Match{Percent: pct(101)}), ErrInvalid, "outside 0-100"},
		{"percent negative", []Command{put("a", TypeText)}, gray("b", Match{Percent: pct(-1)}), ErrInvalid, "outside 0-100"},
		{"empty match", []Command{put("a", TypeText)}, gray("b", Match{}), ErrInvalid, "exactly one"},
		{"two matches", []Command{put("a", TypeText)}, gray("b", Match{Percent: pct(5), Instances: []string{"x"}}), ErrInvalid, "exactly one"},
		{"no match", []Command{put("a", TypeText)}, Command{Op: OpGray, Item: item, Content: "b"}, ErrInvalid, "without match"},
		{"gray content checked as the item's type", []Command{put(`{}`, TypeJSON)}, gray(`{"a":`, Match{Percent: pct(5)}), ErrInvalid, "not JSON"},
		{"promote without gray", []Command{put("a", TypeText)}, Command{Op: OpPromote, Item: item}, ErrNotFound, "no active gray"},
		{"abort without gray", []Command{put("a", TypeText)}, Command{Op: OpAbort, Item: item}, ErrNotFound, "no active gray"},
		{"rollback to a missing version", []Command{put("a", TypeText)}, Command{Op: OpRollback, Item: item, Version: 2}, ErrNotFound, "no version 2"},
		{"rollback to version 0", []Command{put("a", TypeText)}, Command{Op: OpRollback, Item: item}, ErrNotFound, "no version 0"},
		{"rollback unknown item", nil, Command{Op: OpRollback, Item: item, Version: 1}, ErrNotFound, "item"},
		{"create over an existing item", []Command{put("a", TypeText)}, casPut("b", 0), ErrConflict, "is at version 1, not 0"},
		{"put over a stale version", []Command{put("a", TypeText), put("b", TypeText)}, casPut("c", 1), ErrConflict, "is at version 2, not 1"},
		{"put over a version of a missing item", nil, casPut("a", 3), ErrConflict, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine()
			mustApply(t, m, tc.before...)
			before := snapshotBytes(t, m)
			if err := m.Check(tc.cmd); !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			_, err := m.ApplyCommand(tc.cmd)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want %v with %q", err, tc.want, tc.reason)
			}
			if after := snapshotBytes(t, m); !bytes.Equal(before, after) {
				t.Errorf("a refused command changed the state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func snapshotBytes(t *testing.T, m *Machine) []byte {
	t.Helper()
	f, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGrayLifecycle(t *testing.T) {
	in := map[string]string{"zone": "eu-1"}
	out := map[string]string{"zone": "us-1"}
	type want struct {
		content string
		version uint64
		gray    bool
	}
	for _, tc := range []struct {
		name     string
		cmds     []Command
		inGray   want
		outside  want
		versions int
	}{
		{
			name:    "gray active",
			cmds:    []Command{put("a", TypeText), gray("b", Match{Labels: map[string]string{"zone": "eu-1"}})},
			inGray:  want{"b", 2, true},
			outside: want{"a", 1, false}, versions: 2,
		},
		{
			name:    "put during a gray moves only the formal value",
			cmds:    []Command{put("a", TypeText), gray("b", Match{Labels: map[string]string{"zone": "eu-1"}}), put("c", TypeText)},
			inGray:  want{"b", 2, true},
			outside: want{"c", 3, false}, versions: 3,
		},
		{
			name: "promote",
			cmds: []Command{put("a", TypeText), gray("b", Match{Labels: map[string]string{"zone": "eu-1"}}),
				{Op: OpPromote, Item: item, Author: "bob"}},
			inGray:  want{"b", 3, false},
			outside: want{"b", 3, false}, versions: 3,
		},
		{
			name: "abort",
			cmds: []Command{put("a", TypeText), gray("b", Match{Labels: map[string]string{"zone": "eu-1"}}),
				{Op: OpAbort, Item: item, Author: "guard"}},
			inGray:  want{"a", 1, false},
			outside: want{"a", 1, false}, versions: 2,
		},
		{
			name: "a new gray after an abort",
			cmds: []Command{put("a", TypeText), gray("b", Match{Labels: map[string]string{"zone": "eu-1"}}),
				{Op: OpAbort, Item: item}, gray("d", Match{Labels: map[string]string{"zone": "eu-1"}})},
			inGray:  want{"d", 3, true},
			outside: want{"a", 1, false}, versions: 3,
		},
		{
			name: "rollback republishes",
			cmds: []Command{put("a", TypeText), put("b", TypeText),
				{Op: OpRollback, Item: item, Version: 1}},
			inGray:  want{"a", 3, false},
			outside: want{"a", 3, false}, versions: 3,
		},
		{
			name: "rollback during a gray leaves the gray",
			cmds: []Command{put("a", TypeText), put("b", TypeText), gray("g", Match{Labels: map[string]string{"zone": "eu-1"}}),
				{Op: OpRollback, Item: item, Version: 1}},
			inGray:  want{"g", 3, true},
			outside: want{"a", 4, false}, versions: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine()
			mustApply(t, m, tc.cmds...)
			for _, c := range []struct {
				labels map[string]string
				want   want
			}{{in, tc.inGray}, {out, tc.outside}} {
				r, err := m.Resolve(item, "pod-a", c.labels)
				if err != nil {
					t.Fatal(err)
				}
				if r.Content != c.want.content || r.Version != c.want.version || r.Gray != c.want.gray || r.MD5 != MD5(c.want.content) {
					t.Errorf("labels %v: got %+v, want %+v", c.labels, r, c.want)
				}
			}
			it, _ := m.Item(item)
			if len(it.Versions) != tc.versions {
				t.Errorf("%d versions, want %d", len(it.Versions), tc.versions)
			}
			for i, v := range it.Versions {
				if v.Version != uint64(i+1) {
					t.Errorf("version %d numbered %d", i+1, v.Version)
				}
			}
			if changes := m.Changes(t0.Add(-time.Hour), t0.Add(time.Hour)); len(changes) != len(tc.cmds) {
				t.Errorf("%d change events, want one per command (%d): %+v", len(changes), len(tc.cmds), changes)
			}
		})
	}
}

func TestResults(t *testing.T) {
	m := NewMachine()
	if r := mustApply(t, m, put("a", TypeText)); r != (Result{1, MD5("a"), 1}) {
		t.Errorf("put: %+v", r)
	}
	if r := mustApply(t, m, gray("b", Match{Percent: pct(50)})); r != (Result{2, MD5("b"), 2}) {
		t.Errorf("gray: %+v", r)
	}
	if r := mustApply(t, m, Command{Op: OpAbort, Item: item}); r != (Result{1, MD5("a"), 3}) {
		t.Errorf("abort answers the formal version: %+v", r)
	}
	it, _ := m.Item(item)
	if it.Gray != nil || it.Formal != 1 || !it.Versions[1].Gray || it.Versions[1].Action != OpGray {
		t.Errorf("after abort: %+v", it)
	}
	changes := m.Changes(time.Time{}, t0.Add(time.Hour))
	var actions []string
	for _, c := range changes {
		actions = append(actions, c.Action+"@"+c.Item)
	}
	if got := strings.Join(actions, " "); got != "put@shop/payment/timeout gray@shop/payment/timeout abort@shop/payment/timeout" {
		t.Errorf("changes: %s", got)
	}
	if got := m.Changes(t0.Add(30*time.Second), t0.Add(time.Hour)); len(got) != 2 || got[0].Author != "bob" {
		t.Errorf("changes from t0+30s: %+v", got)
	}
}

func TestChangedWakes(t *testing.T) {
	m := NewMachine()
	ch := m.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	mustApply(t, m, put("a", TypeText))
	select {
	case <-ch:
	default:
		t.Fatal("not closed by a change")
	}
	ch = m.Changed()
	if _, err := m.ApplyCommand(Command{Op: OpAbort, Item: item}); err == nil {
		t.Fatal("abort without gray accepted")
	}
	select {
	case <-ch:
		t.Fatal("closed by a refused command")
	default:
	}
}

func TestApplySnapshotRestore(t *testing.T) {
	// Through the consensus.StateMachine interface: commands as bytes,
	// and a restored machine answers as the original.
	a := NewMachine()
	for _, c := range []Command{put("x: 1\n", TypeYAML), gray("x: 2\n", Match{Instances: []string{"pod-a"}})} {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Apply([]byte("{")); !errors.Is(err, ErrInvalid) {
		t.Errorf("unreadable command: %v", err)
	}
	b := NewMachine()
	if err := b.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("restored state differs")
	}
	r, _ := b.Resolve(item, "pod-a", nil)
	if r.Content != "x: 2\n" || !r.Gray {
		t.Errorf("restored gray: %+v", r)
	}
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(item, "pod-a", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("after reset: %v", err)
	}
}

// An abort naming a gray version ends that gray only: the guard's abort,
// decided on one gray, must not end a gray started after it.
func TestAbortOfVersionAndActiveGrays(t *testing.T) {
	m := NewMachine()
	if got := m.ActiveGrays(); len(got) != 0 {
		t.Fatalf("ActiveGrays of an empty machine: %v", got)
	}
	other := Key{"shop", "cart", "flags"}
	mustApply(t, m, put("a", TypeText), gray("b", Match{Instances: []string{"pod-a"}}),
		Command{Op: OpPut, Item: other, Content: "x", ContentType: TypeText, Author: "ann", Time: t0})
	got := m.ActiveGrays()
	if len(got) != 1 || got[0].Item != item || got[0].Gray.Version != 2 {
		t.Fatalf("ActiveGrays = %+v, want the gray of %s at version 2", got, item)
	}
	_, err := m.ApplyCommand(Command{Op: OpAbort, Item: item, Version: 9, Author: "vigil-guard", Time: t0})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "active gray is version 2") {
		t.Fatalf("abort of another gray version: %v, want not found naming the active one", err)
	}
	res := mustApply(t, m, Command{Op: OpAbort, Item: item, Version: 2, Author: "vigil-guard", Message: "why"})
	if res.Version != 1 {
		t.Errorf("abort answered version %d, want the formal 1", res.Version)
	}
	if got := m.ActiveGrays(); len(got) != 0 {
		t.Errorf("ActiveGrays after the abort: %+v", got)
	}
	ch := m.Changes(t0, t0.Add(time.Hour))
	last := ch[len(ch)-1]
	if last.Action != OpAbort || last.Author != "vigil-guard" || last.Message != "why" {
		t.Errorf("last change %+v, want the guard's abort with its reason", last)
	}
}

func TestCopiesDoNotShareAppends(t *testing.T) {
	// Writes append to the item's array of versions in place; what was
	// handed out before (an Item, a snapshot) must not see them, and an
	// append to a copy must not reach the machine.
	m := NewMachine()
	mustApply(t, m, put("a", TypeText), put("b", TypeText))
	copyBefore, _ := m.Item(item)
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	copyBefore.Versions = append(copyBefore.Versions, Version{Version: 99, Content: "mine"})
	mustApply(t, m, put("c", TypeText), put("d", TypeText))
	it, _ := m.Item(item)
	if len(it.Versions) != 4 || it.Versions[2].Content != "c" || it.Versions[3].Content != "d" {
		t.Errorf("machine: %+v", it.Versions)
	}
	if copyBefore.Versions[2].Content != "mine" {
		t.Errorf("copy: %+v", copyBefore.Versions)
	}
	var b bytes.Buffer
	if err := snap(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `"content":"c"`) || !strings.Contains(b.String(), `"content":"b"`) {
		t.Errorf("a snapshot taken before the writes holds them: %s", b.String())
	}
}

// TestSchemaSnapshot: an item's schema is in the snapshot and enforced
// after a restore; Check refuses what Apply would.
func TestSchemaSnapshot(t *testing.T) {
	m := NewMachine()
	mustApply(t, m, Command{Op: OpSchema, Item: item, Content: `{"type":"object","required":["ms"]}`, Author: "ann"})
	bad := put(`{"s":1}`, TypeJSON)
	if err := m.Check(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Check: %v", err)
	}
	r := NewMachine()
	if err := r.Restore(bytes.NewReader(snapshotBytes(t, m))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ApplyCommand(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "missing property 'ms'") {
		t.Fatalf("after restore: %v", err)
	}
	if s, ok := r.Schema(item); !ok || s != `{"type":"object","required":["ms"]}` {
		t.Fatalf("schema %q %v", s, ok)
	}
	mustApply(t, r, put(`{"ms":1}`, TypeJSON))
	if err := r.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Schema(item); ok {
		t.Fatal("a schema after Reset")
	}
}

// TestHistoryBounded: past MaxVersions an item's oldest versions are
// dropped down to KeepVersions, but for the formal version, which a
// run of grays can leave far behind; a rollback to a dropped version is
// 404; numbering goes on.
func TestHistoryBounded(t *testing.T) {
	m := NewMachine()
	mustApply(t, m, put("formal", TypeText))
	for i := range MaxVersions {
		mustApply(t, m, gray(fmt.Sprint("gray ", i), Match{Percent: pct(5)}), Command{Op: OpAbort, Item: item, Author: "bob"})
	}
	it, err := m.Item(item)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(it.Versions); n > MaxVersions || n < KeepVersions {
		t.Fatalf("%d versions kept", n)
	}
	if it.Versions[0].Version != 1 || it.Formal != 1 {
		t.Fatalf("the formal version was dropped: first kept %d, formal %d", it.Versions[0].Version, it.Formal)
	}
	if it.Compacted != uint64(MaxVersions+1-len(it.Versions)) {
		t.Fatalf("compacted %d of %d", it.Compacted, MaxVersions+1)
	}
	if v, _ := m.Dropped(); v != it.Compacted {
		t.Fatalf("Dropped %d", v)
	}
	r, err := m.Resolve(item, "pod-a", nil)
	if err != nil || r.Content != "formal" || r.Version != 1 {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	if _, err := m.ApplyCommand(Command{Op: OpRollback, Item: item, Version: 2, Author: "ann", Time: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback to a dropped version: %v", err)
	}
	last := it.Versions[len(it.Versions)-1].Version
	res := mustApply(t, m, Command{Op: OpRollback, Item: item, Version: last, Author: "ann"})
	if res.Version != last+1 {
		t.Fatalf("next version %d after %d", res.Version, last)
	}
}

// TestChangesBounded: past MaxChanges the oldest change events are
// dropped down to KeepChanges and counted.
func TestChangesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("applies MaxChanges commands")
	}
	m := NewMachine()
	c := put("x", TypeText)
	for i := range MaxChanges + 1 {
		c.Time = t0.Add(time.Duration(i) * time.Millisecond)
		c.Item.Key = fmt.Sprint("k", i%100)
		if _, err := m.ApplyCommand(c); err != nil {
			t.Fatal(err)
		}
	}
	all := m.Changes(t0, t0.Add(time.Hour))
	if len(all) != KeepChanges {
		t.Fatalf("%d changes kept", len(all))
	}
	if want := t0.Add(time.Duration(MaxChanges-KeepChanges+1) * time.Millisecond); !all[0].Time.Equal(want) {
		t.Fatalf("oldest kept %s, want %s", all[0].Time, want)
	}
	if _, ch := m.Dropped(); ch != MaxChanges-KeepChanges+1 {
		t.Fatalf("dropped %d", ch)
	}
}

// TestItemsBounded: a put of a new item past MaxItems is refused; the
// items there still take writes.
func TestItemsBounded(t *testing.T) {
	m := NewMachine()
	c := put("x", TypeText)
	for i := range MaxItems {
		c.Item.Key = fmt.Sprint("k", i)
		mustApply(t, m, c)
	}
	c.Item.Key = "one-more"
	if _, err := m.ApplyCommand(c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "limit of 10000 items") {
		t.Fatalf("a new item past the limit: %v", err)
	}
	c.Item.Key = "k0"
	mustApply(t, m, c)
}
