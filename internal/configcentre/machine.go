package configcentre

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// MachineName is the configuration centre's name on a log shared by
// several state machines (statemux).
const MachineName = "configcentre"

// The operations a Command can carry; each is also the Action of the
// change event it leaves.
const (
	OpPut      = "put"
	OpGray     = "gray"
	OpPromote  = "promote"
	OpAbort    = "abort"
	OpRollback = "rollback"
	// OpSchema sets an item's JSON Schema (Content), or removes it
	// (Content empty).
	OpSchema = "schema"
)

// Command is one write. Time and Author are filled in by whoever proposes
// it (the HTTP handler), never by Apply, so every node applying it reaches
// the same state.
type Command struct {
	Op          string          `json:"op"`
	Item        Key             `json:"item"`
	Content     string          `json:"content,omitempty"`
	ContentType ContentType     `json:"content_type,omitempty"`
	Match       *Match          `json:"match,omitempty"`
	Guard       json.RawMessage `json:"guard,omitempty"`
	// Version is the version a rollback republishes; for an abort, when
	// not 0, the gray version it ends (an abort decided on one gray, as
	// the SLO guard's, never ends a later one).
	Version uint64 `json:"version,omitempty"`
	// CAS, when set, makes a put conditional: it applies only if the
	// item's formal version is *CAS at that point of the log, 0 meaning
	// the item does not exist yet. Two writers that read the same version
	// cannot both publish over it.
	CAS     *uint64   `json:"cas,omitempty"`
	Author  string    `json:"author"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
	// Principal is the credential the write authenticated with (empty
	// with authentication off): unlike Author, not the caller's claim.
	Principal string `json:"principal,omitempty"`
}

// Result is what an applied command left: the version it published (for
// abort, the formal version everyone is back on) and its MD5.
type Result struct {
	Version uint64 `json:"version"`
	MD5     string `json:"md5"`
	// Seq is the machine's Seq after the command: a node that has applied
	// as many commands has applied this one.
	Seq uint64 `json:"-"`
}

// appliedResult is a Result as Apply returns it through the log.
type appliedResult struct {
	Version uint64 `json:"version"`
	MD5     string `json:"md5"`
	Seq     uint64 `json:"seq"`
}

// DecodeResult reads what Apply returned through a replicated log.
func DecodeResult(b []byte) (Result, error) {
	var r appliedResult
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("configcentre: result: %w", err)
	}
	return Result(r), nil
}

// Machine holds the state. Apply is called from one goroutine at a time;
// reads (Resolve, Item, Changes, Changed) are safe concurrently with it.
type Machine struct {
	mu      sync.RWMutex
	items   map[Key]*Item
	changes []Change
	// schemas are the items' schemas, compiled when set or restored;
	// an item may have one before its first put.
	schemas map[Key]*Schema
	// compactedVersions and droppedChanges count what the bounds dropped
	// (since this process started: they are not in snapshots).
	compactedVersions, droppedChanges uint64
	// seq counts the commands applied (refused ones are not): every node
	// applying the same log counts alike.
	seq uint64
	// changed is closed, and replaced, after every applied command.
	changed chan struct{}
}

var _ consensus.StateMachine = (*Machine)(nil)

// NewMachine returns an empty machine.
func NewMachine() *Machine {
	return &Machine{items: map[Key]*Item{}, schemas: map[Key]*Schema{}, changed: make(chan struct{})}
}

// Changed returns a channel closed at the next applied command (or
// restore). Take it before reading the state, and a change made after the
// read cannot be missed.
func (m *Machine) Changed() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

// Seq is the number of commands applied.
func (m *Machine) Seq() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.seq
}

// WaitApplied returns once Seq is at least seq, or with ctx's error.
func (m *Machine) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		m.mu.RLock()
		at, changed := m.seq, m.changed
		m.mu.RUnlock()
		if at >= seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Resolve is the value the instance with this id and labels should use.
func (m *Machine) Resolve(k Key, instance string, labels map[string]string) (Resolved, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	it, ok := m.items[k]
	if !ok {
		return Resolved{}, fmt.Errorf("%w: item %s", ErrNotFound, k)
	}
	return it.resolve(instance, labels), nil
}

// Item returns a copy of the item, for its history and gray.
func (m *Machine) Item(k Key) (Item, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	it, ok := m.items[k]
	if !ok {
		return Item{}, fmt.Errorf("%w: item %s", ErrNotFound, k)
	}
	return cloneItem(it, true), nil
}

// Summary is an item as a listing shows it: its address, its formal
// version and its active gray, without the history (every version's
// content, up to MaxContentBytes each, is too much for a list).
type Summary struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Key       string `json:"key"`
	// The formal version: the one instances outside a gray get.
	Version     uint64      `json:"version"`
	ContentType ContentType `json:"content_type"`
	MD5         string      `json:"md5"`
	Author      string      `json:"author"`
	Message     string      `json:"message"`
	Time        time.Time   `json:"time"`
	// Versions is how many versions were published, formal or gray; the
	// newest is numbered Versions.
	Versions uint64 `json:"versions"`
	Gray     *Gray  `json:"gray,omitempty"`
}

// Items returns every item's summary, ordered by namespace, group and
// key.
func (m *Machine) Items() []Summary {
	m.mu.RLock()
	out := make([]Summary, 0, len(m.items))
	for k, it := range m.items {
		v, _ := it.version(it.Formal)
		s := Summary{
			Namespace: k.Namespace, Group: k.Group, Key: k.Key,
			Version: v.Version, ContentType: v.ContentType, MD5: v.MD5, Author: v.Author, Message: v.Message, Time: v.Time,
			Versions: uint64(len(it.Versions)),
		}
		if it.Gray != nil {
			g := *it.Gray
			g.Match = cloneMatch(g.Match)
			s.Gray = &g
		}
		out = append(out, s)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Key < b.Key
	})
	return out
}

// ActiveGray is an item's active gray, as ActiveGrays lists it.
type ActiveGray struct {
	Item Key
	Gray Gray
}

// ActiveGrays returns every active gray, ordered by item.
func (m *Machine) ActiveGrays() []ActiveGray {
	m.mu.RLock()
	var out []ActiveGray
	for k, it := range m.items {
		if it.Gray != nil {
			g := *it.Gray
			g.Match = cloneMatch(g.Match)
			out = append(out, ActiveGray{Item: k, Gray: g})
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Item.String() < out[j].Item.String() })
	return out
}

// Changes returns the change events with start <= Time <= end, oldest
// first.
func (m *Machine) Changes(start, end time.Time) []Change {
	m.mu.RLock()
	defer m.mu.RUnlock()
	// Events are appended in log order, which is time order as long as
	// proposers' clocks agree; filter rather than search, so a clock that
	// stepped back hides nothing.
	var out []Change
	for _, c := range m.changes {
		if !c.Time.Before(start) && !c.Time.After(end) {
			out = append(out, c)
		}
	}
	return out
}

// Check reports whether c would be refused, without applying it: the
// validation Apply does, run by a proposer before it writes the command
// anywhere.
func (m *Machine) Check(c Command) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if c.Op == OpSchema {
		_, _, err := m.prepareSchema(c)
		return err
	}
	_, _, err := m.prepare(c, true)
	return err
}

// Dropped returns how many versions the histories' bound and how many
// change events the change list's bound have dropped since the machine
// was made.
func (m *Machine) Dropped() (versions, changes uint64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.compactedVersions, m.droppedChanges
}

// Schema returns the item's schema, if it has one.
func (m *Machine) Schema(k Key) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.schemas[k]
	if !ok {
		return "", false
	}
	return s.raw, true
}

// prepareSchema validates a schema command: the schema compiles, and the
// item's formal version and active gray, if any, match it. It returns
// the compiled schema (nil to remove it). Called with mu held.
func (m *Machine) prepareSchema(c Command) (*Schema, Result, error) {
	if err := c.Item.Validate(); err != nil {
		return nil, Result{}, err
	}
	if c.Content == "" {
		if _, ok := m.schemas[c.Item]; !ok {
			return nil, Result{}, fmt.Errorf("%w: item %s has no schema", ErrNotFound, c.Item)
		}
		var res Result
		if it, ok := m.items[c.Item]; ok {
			res.Version = it.Formal
		}
		return nil, res, nil
	}
	sch, err := CompileSchema(c.Content)
	if err != nil {
		return nil, Result{}, err
	}
	res := Result{MD5: MD5(c.Content)}
	if it, ok := m.items[c.Item]; ok {
		formal, _ := it.version(it.Formal)
		if err := sch.Validate(formal.ContentType, formal.Content); err != nil {
			return nil, Result{}, fmt.Errorf("the formal version %d: %w", formal.Version, err)
		}
		if it.Gray != nil {
			gv, _ := it.version(it.Gray.Version)
			if err := sch.Validate(gv.ContentType, gv.Content); err != nil {
				return nil, Result{}, fmt.Errorf("the active gray's version %d: %w", gv.Version, err)
			}
		}
		res.Version = formal.Version
	}
	return sch, res, nil
}

// checkSchema checks content against the item's schema, if it has one.
// Called with mu held.
func (m *Machine) checkSchema(k Key, t ContentType, content string) error {
	if s, ok := m.schemas[k]; ok {
		return s.Validate(t, content)
	}
	return nil
}

// ApplyCommand applies c. A refused command (an error matching one of the
// package's sentinels) changes nothing.
func (m *Machine) ApplyCommand(c Command) (Result, error) {
	m.mu.Lock()
	if c.Op == OpSchema {
		sch, res, err := m.prepareSchema(c)
		if err != nil {
			m.mu.Unlock()
			return Result{}, err
		}
		if sch == nil {
			delete(m.schemas, c.Item)
		} else {
			m.schemas[c.Item] = sch
		}
		return m.appliedLocked(c, res), nil
	}
	next, res, err := m.prepare(c, false)
	if err != nil {
		m.mu.Unlock()
		return Result{}, err
	}
	m.compactedVersions += next.compact()
	m.items[c.Item] = next
	return m.appliedLocked(c, res), nil
}

// appliedLocked counts an applied command, records its change event and
// wakes the watchers; it is called with mu locked, and unlocks it.
func (m *Machine) appliedLocked(c Command, res Result) Result {
	m.seq++
	res.Seq = m.seq
	if len(m.changes) >= MaxChanges {
		drop := len(m.changes) - KeepChanges + 1
		m.changes = slices.Clone(m.changes[drop:])
		m.droppedChanges += uint64(drop)
	}
	m.changes = append(m.changes, Change{
		Time: c.Time, Kind: "config", Action: c.Op, Item: c.Item.String(),
		Version: res.Version, Author: c.Author, Message: c.Message, Principal: c.Principal,
	})
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return res
}

// prepare validates c against the state and returns the item as c leaves
// it, a new value sharing nothing mutable with the current one but the
// array of versions, which it appends to past the current item's length
// (so no one holding the current item sees it change, and a write does
// not copy the whole history). Only ApplyCommand, under the write lock,
// may do that; Check passes dry, and gets the result without the new
// version appended. Called with mu held.
func (m *Machine) prepare(c Command, dry bool) (*Item, Result, error) {
	if err := c.Item.Validate(); err != nil {
		return nil, Result{}, err
	}
	cur, exists := m.items[c.Item]
	var next Item
	if exists {
		next = cloneItem(cur, false)
	} else {
		next = Item{Key: c.Item}
	}
	publish := func(v Version) Result {
		v.Version = next.next()
		v.MD5 = MD5(v.Content)
		v.Author, v.Message, v.Time, v.Principal = c.Author, c.Message, c.Time, c.Principal
		if !dry {
			next.Versions = append(next.Versions, v)
		}
		if !v.Gray {
			next.Formal = v.Version
		}
		return Result{Version: v.Version, MD5: v.MD5}
	}
	var res Result
	switch c.Op {
	case OpPut:
		if c.CAS != nil && *c.CAS != next.Formal {
			if !exists {
				return nil, Result{}, fmt.Errorf("%w: item %s does not exist, not at version %d (cas)", ErrConflict, c.Item, *c.CAS)
			}
			return nil, Result{}, fmt.Errorf("%w: item %s is at version %d, not %d (cas)", ErrConflict, c.Item, next.Formal, *c.CAS)
		}
		if !exists && len(m.items) >= MaxItems {
			return nil, Result{}, fmt.Errorf("%w: the configuration centre holds its limit of %d items", ErrInvalid, MaxItems)
		}
		if err := CheckContent(c.ContentType, c.Content); err != nil {
			return nil, Result{}, err
		}
		if err := m.checkSchema(c.Item, c.ContentType, c.Content); err != nil {
			return nil, Result{}, err
		}
		res = publish(Version{Content: c.Content, ContentType: c.ContentType, Action: OpPut})
	case OpGray:
		if !exists {
			return nil, Result{}, fmt.Errorf("%w: item %s: a gray needs a published item", ErrNotFound, c.Item)
		}
		if next.Gray != nil {
			return nil, Result{}, fmt.Errorf("%w: item %s already has an active gray (version %d): promote or abort it first", ErrConflict, c.Item, next.Gray.Version)
		}
		if c.Match == nil {
			return nil, Result{}, fmt.Errorf("%w: gray without match", ErrInvalid)
		}
		if err := c.Match.Validate(); err != nil {
			return nil, Result{}, err
		}
		t := c.ContentType
		if t == "" {
			formal, _ := next.version(next.Formal)
			t = formal.ContentType
		}
		if err := CheckContent(t, c.Content); err != nil {
			return nil, Result{}, err
		}
		if err := m.checkSchema(c.Item, t, c.Content); err != nil {
			return nil, Result{}, err
		}
		match := cloneMatch(*c.Match)
		res = publish(Version{Content: c.Content, ContentType: t, Gray: true, Action: OpGray, Match: &match, Guard: slices.Clone(c.Guard)})
		next.Gray = &Gray{
			Version: res.Version, Match: cloneMatch(*c.Match), Guard: slices.Clone(c.Guard),
			Author: c.Author, Message: c.Message, Started: c.Time,
		}
	case OpPromote, OpAbort:
		if !exists || next.Gray == nil {
			return nil, Result{}, fmt.Errorf("%w: item %s has no active gray", ErrNotFound, c.Item)
		}
		g := next.Gray
		if c.Op == OpAbort && c.Version != 0 && c.Version != g.Version {
			return nil, Result{}, fmt.Errorf("%w: item %s has no active gray version %d (the active gray is version %d)", ErrNotFound, c.Item, c.Version, g.Version)
		}
		next.Gray = nil
		if c.Op == OpAbort {
			formal, _ := next.version(next.Formal)
			res = Result{Version: formal.Version, MD5: formal.MD5}
			break
		}
		gv, _ := next.version(g.Version)
		if err := m.checkSchema(c.Item, gv.ContentType, gv.Content); err != nil {
			return nil, Result{}, fmt.Errorf("the gray's version %d: %w", gv.Version, err)
		}
		res = publish(Version{Content: gv.Content, ContentType: gv.ContentType, Action: OpPromote, From: g.Version})
	case OpRollback:
		if !exists {
			return nil, Result{}, fmt.Errorf("%w: item %s", ErrNotFound, c.Item)
		}
		old, ok := next.version(c.Version)
		if !ok {
			return nil, Result{}, fmt.Errorf("%w: item %s has no version %d", ErrNotFound, c.Item, c.Version)
		}
		if err := m.checkSchema(c.Item, old.ContentType, old.Content); err != nil {
			return nil, Result{}, fmt.Errorf("version %d: %w", old.Version, err)
		}
		res = publish(Version{Content: old.Content, ContentType: old.ContentType, Action: OpRollback, From: old.Version})
	default:
		return nil, Result{}, fmt.Errorf("%w: operation %q", ErrInvalid, c.Op)
	}
	return &next, res, nil
}

// EncodeCommand is c as Apply reads it.
func EncodeCommand(c Command) ([]byte, error) { return json.Marshal(c) }

// Apply implements consensus.StateMachine. A refused command is returned
// as its error (a result, the same on every node), leaving the state as
// it was.
func (m *Machine) Apply(b []byte) ([]byte, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: command: %v", ErrInvalid, err)
	}
	res, err := m.ApplyCommand(c)
	if err != nil {
		return nil, err
	}
	return json.Marshal(appliedResult(res))
}

// snapshot is the whole state as written by Snapshot.
type snapshot struct {
	Seq     uint64       `json:"seq"`
	Items   []Item       `json:"items"`
	Changes []Change     `json:"changes"`
	Schemas []itemSchema `json:"schemas,omitempty"`
}

// itemSchema is an item's schema in a snapshot.
type itemSchema struct {
	Item   Key    `json:"item"`
	Schema string `json:"schema"`
}

// Snapshot implements consensus.StateMachine.
func (m *Machine) Snapshot() (consensus.SnapshotFunc, error) {
	m.mu.RLock()
	s := snapshot{Seq: m.seq, Changes: slices.Clone(m.changes)}
	for _, it := range m.items {
		// Items are replaced, never changed in place, on Apply: sharing
		// their slices with the snapshot is safe.
		s.Items = append(s.Items, *it)
	}
	for k, sch := range m.schemas {
		s.Schemas = append(s.Schemas, itemSchema{Item: k, Schema: sch.raw})
	}
	m.mu.RUnlock()
	sort.Slice(s.Items, func(i, j int) bool { return s.Items[i].Key.String() < s.Items[j].Key.String() })
	sort.Slice(s.Schemas, func(i, j int) bool { return s.Schemas[i].Item.String() < s.Schemas[j].Item.String() })
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(s) }, nil
}

// Restore implements consensus.StateMachine.
func (m *Machine) Restore(r io.Reader) error {
	var s snapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("%w: snapshot: %v", ErrInvalid, err)
	}
	items := make(map[Key]*Item, len(s.Items))
	for i := range s.Items {
		items[s.Items[i].Key] = &s.Items[i]
	}
	schemas := make(map[Key]*Schema, len(s.Schemas))
	for _, is := range s.Schemas {
		sch, err := CompileSchema(is.Schema)
		if err != nil {
			return fmt.Errorf("snapshot: the schema of %s: %w", is.Item, err)
		}
		schemas[is.Item] = sch
	}
	m.mu.Lock()
	m.items, m.changes, m.seq, m.schemas = items, s.Changes, s.Seq, schemas
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return nil
}

// Reset implements statemux.Resetter.
func (m *Machine) Reset() error {
	m.mu.Lock()
	m.items, m.changes, m.seq, m.schemas = map[Key]*Item{}, nil, 0, map[Key]*Schema{}
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return nil
}

// cloneItem copies it; clip for a copy handed outside the machine, whose
// appends must copy rather than write into the machine's array of
// versions (only the machine appends there, past every length it shared).
func cloneItem(it *Item, clip bool) Item {
	c := *it
	if clip {
		c.Versions = slices.Clip(it.Versions)
	}
	if it.Gray != nil {
		g := *it.Gray
		g.Match = cloneMatch(g.Match)
		c.Gray = &g
	}
	return c
}

func cloneMatch(m Match) Match {
	if m.Labels != nil {
		l := make(map[string]string, len(m.Labels))
		for k, v := range m.Labels {
			l[k] = v
		}
		m.Labels = l
	}
	m.Instances = slices.Clone(m.Instances)
	if m.Percent != nil {
		p := *m.Percent
		m.Percent = &p
	}
	return m
}
