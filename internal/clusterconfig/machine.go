package clusterconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// MachineName is the configuration's name on a log shared by several
// state machines.
const MachineName = "config"

// Command operations.
const (
	// opSet makes the command's Doc the configuration.
	opSet = "set"
	// opInit does so only while there is none: the first leader of a new
	// cluster proposes its local files with it, and a second leader doing
	// the same after a quick failover changes nothing.
	opInit = "init"
)

type command struct {
	Op  string `json:"op"`
	Doc Doc    `json:"doc"`
}

// Result is what a committed proposal left: the configuration's
// generation and digest, and whether it changed it (a proposal equal to
// what is committed changes nothing).
type Result struct {
	Generation uint64 `json:"generation"`
	Digest     string `json:"digest"`
	Changed    bool   `json:"changed"`
}

// Machine is the consensus.StateMachine holding the replicated
// configuration. Safe for concurrent use: the log applies, others read.
type Machine struct {
	mu      sync.RWMutex
	cur     Doc
	changed chan struct{}
}

var _ consensus.StateMachine = (*Machine)(nil)

// NewMachine returns a machine with no configuration (generation 0).
func NewMachine() *Machine { return &Machine{changed: make(chan struct{}, 1)} }

// Current is the configuration as last applied.
func (m *Machine) Current() Doc {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cur
}

// Changed receives after each change of Current. Changes coalesce: a
// reader that is behind is told once and reads the latest, so, unlike the
// log's Subscribe, it is never dropped and never misses the last change.
func (m *Machine) Changed() <-chan struct{} { return m.changed }

func (m *Machine) set(d Doc) {
	m.mu.Lock()
	m.cur = d
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// EncodeSet is the command making d the configuration.
func EncodeSet(d Doc) ([]byte, error) { return json.Marshal(command{Op: opSet, Doc: d}) }

// EncodeInit is the command making d the configuration if there is none.
func EncodeInit(d Doc) ([]byte, error) { return json.Marshal(command{Op: opInit, Doc: d}) }

// DecodeResult reads what Apply returned through Propose.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("%w: result: %w", ErrBadCommand, err)
	}
	return r, nil
}

// Apply implements consensus.StateMachine. The generation is counted here,
// by the log, so every node numbers the same configuration alike.
func (m *Machine) Apply(b []byte) ([]byte, error) {
	var c command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	cur := m.Current()
	res := Result{Generation: cur.Generation, Digest: cur.Digest()}
	switch c.Op {
	case opSet:
	case opInit:
		if cur.Generation != 0 {
			return json.Marshal(res)
		}
	default:
		return nil, fmt.Errorf("%w: operation %q", ErrBadCommand, c.Op)
	}
	if digest := c.Doc.Digest(); cur.Generation == 0 || digest != res.Digest {
		c.Doc.Generation = cur.Generation + 1
		m.set(c.Doc)
		res = Result{Generation: c.Doc.Generation, Digest: digest, Changed: true}
	}
	return json.Marshal(res)
}

// Snapshot implements consensus.StateMachine.
func (m *Machine) Snapshot() (consensus.SnapshotFunc, error) {
	b, err := json.Marshal(m.Current())
	if err != nil {
		return nil, err
	}
	return func(w io.Writer) error { _, err := w.Write(b); return err }, nil
}

// Restore implements consensus.StateMachine.
func (m *Machine) Restore(r io.Reader) error {
	var d Doc
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return fmt.Errorf("%w: snapshot: %w", ErrBadCommand, err)
	}
	m.set(d)
	return nil
}

// Reset implements statemux.Resetter: a snapshot from before the
// configuration was replicated holds none.
func (m *Machine) Reset() error {
	m.set(Doc{})
	return nil
}
