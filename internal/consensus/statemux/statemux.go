// Package statemux runs several consensus.StateMachines on one replicated
// log: each command names the machine it is for, and a snapshot holds one
// named section per machine.
//
// A command is a header (a zero byte, the format version, the machine's
// name) followed by the machine's own command. A log written before the
// mux existed holds commands of one machine without any header; Options.Legacy
// names that machine, and a command that does not start with the zero byte
// goes to it. That is unambiguous because the only such machine, the
// alerting state, starts each of its commands with a printable kind byte.
//
// A snapshot starts with a magic line, then each machine's section: its
// name and its own snapshot in chunks, so that no machine's snapshot has to
// be held in memory to learn its length. A snapshot without the magic line
// was written before the mux, by the legacy machine alone.
package statemux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Sentinel errors of the mux.
var (
	// ErrUnknownMachine: a command or snapshot section names a machine this
	// version does not run. It is an error rather than skipped: dropping
	// another machine's state would silently lose it on the next snapshot.
	ErrUnknownMachine = errors.New("statemux: unknown state machine")
	// ErrBadFormat: a command or snapshot this version cannot read.
	ErrBadFormat = errors.New("statemux: unreadable command or snapshot")
)

const (
	headerByte = 0x00
	version    = 0x01
	// maxName bounds a machine's name on the wire, so a corrupt length
	// cannot allocate much.
	maxName = 255
	// chunkSize is the largest chunk a section is written in.
	chunkSize = 64 << 10
)

// snapshotMagic starts every snapshot the mux writes.
var snapshotMagic = []byte("vigil-statemux/1\n")

// Resetter is implemented by a machine that can go back to its empty state.
// Restore resets a machine a snapshot has no section for (the snapshot is
// older than the machine); a machine without it keeps its state then.
type Resetter interface {
	Reset() error
}

// Options configure a Mux.
type Options struct {
	// Machines by name; names are at most 255 bytes and not empty.
	Machines map[string]consensus.StateMachine
	// Legacy names the machine that takes commands and snapshots written
	// before the mux (without a header); empty: there is none, and such a
	// command or snapshot is an error.
	Legacy string
}

// Mux is a consensus.StateMachine that dispatches to the machines in its
// Options. Like any StateMachine it is called from one goroutine.
type Mux struct {
	machines map[string]consensus.StateMachine
	names    []string // sorted: sections are written in this order
	legacy   consensus.StateMachine
}

var _ consensus.StateMachine = (*Mux)(nil)

// New returns a Mux over opts.Machines.
func New(opts Options) (*Mux, error) {
	if len(opts.Machines) == 0 {
		return nil, errors.New("statemux: no machines")
	}
	m := &Mux{machines: opts.Machines}
	for name, sm := range opts.Machines {
		if name == "" || len(name) > maxName || sm == nil {
			return nil, fmt.Errorf("statemux: machine %q: name must be 1 to %d bytes and the machine not nil", name, maxName)
		}
		m.names = append(m.names, name)
	}
	slices.Sort(m.names)
	if opts.Legacy != "" {
		if m.legacy = opts.Machines[opts.Legacy]; m.legacy == nil {
			return nil, fmt.Errorf("statemux: legacy machine %q is not among the machines", opts.Legacy)
		}
	}
	return m, nil
}

// Command returns cmd as a command for the machine called name.
func Command(name string, cmd []byte) []byte {
	out := make([]byte, 0, 2+binary.MaxVarintLen64+len(name)+len(cmd))
	out = append(out, headerByte, version)
	out = binary.AppendUvarint(out, uint64(len(name)))
	out = append(out, name...)
	return append(out, cmd...)
}

// Decode splits a command into the machine's name and its own command; the
// name is empty for a command written before the mux (the legacy
// machine's). For subscribers of the applied stream.
func Decode(cmd []byte) (name string, payload []byte, err error) {
	if len(cmd) == 0 || cmd[0] != headerByte {
		return "", cmd, nil
	}
	if len(cmd) < 2 || cmd[1] != version {
		return "", nil, fmt.Errorf("%w: command header version", ErrBadFormat)
	}
	n, k := binary.Uvarint(cmd[2:])
	if k <= 0 || n == 0 || n > maxName || uint64(len(cmd)-2-k) < n {
		return "", nil, fmt.Errorf("%w: command header", ErrBadFormat)
	}
	start := 2 + k
	return string(cmd[start : start+int(n)]), cmd[start+int(n):], nil
}

// Apply implements consensus.StateMachine.
func (m *Mux) Apply(cmd []byte) ([]byte, error) {
	name, payload, err := Decode(cmd)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if m.legacy == nil {
			return nil, fmt.Errorf("%w: a command without a machine name", ErrBadFormat)
		}
		return m.legacy.Apply(payload)
	}
	sm, ok := m.machines[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMachine, name)
	}
	return sm.Apply(payload)
}

// Snapshot implements consensus.StateMachine: every machine's Snapshot is
// taken now, in this call, so the sections are of one point in the log.
func (m *Mux) Snapshot() (consensus.SnapshotFunc, error) {
	writes := make([]consensus.SnapshotFunc, len(m.names))
	for i, name := range m.names {
		w, err := m.machines[name].Snapshot()
		if err != nil {
			return nil, fmt.Errorf("statemux: snapshot %s: %w", name, err)
		}
		writes[i] = w
	}
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		_, _ = bw.Write(snapshotMagic)
		for i, name := range m.names {
			_, _ = bw.Write(binary.AppendUvarint(nil, uint64(len(name))))
			_, _ = bw.WriteString(name)
			cw := &chunkWriter{w: bw}
			if err := writes[i](cw); err != nil {
				return fmt.Errorf("statemux: snapshot %s: %w", name, err)
			}
			if err := cw.Close(); err != nil {
				return err
			}
		}
		// A zero-length name ends the snapshot, so a truncated one is
		// told from a complete one.
		_, _ = bw.Write([]byte{0})
		return bw.Flush()
	}, nil
}

// Restore implements consensus.StateMachine. A snapshot written before the
// mux goes whole to the legacy machine; machines a snapshot has no section
// for are reset.
func (m *Mux) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(snapshotMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrBadFormat, err)
	}
	if !bytes.Equal(head, snapshotMagic) {
		if m.legacy == nil {
			return fmt.Errorf("%w: not a state mux snapshot", ErrBadFormat)
		}
		if err := m.legacy.Restore(br); err != nil {
			return err
		}
		return m.resetAllBut(map[consensus.StateMachine]bool{m.legacy: true})
	}
	_, _ = br.Discard(len(snapshotMagic))
	restored := map[consensus.StateMachine]bool{}
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("%w: snapshot truncated: %w", ErrBadFormat, err)
		}
		if n == 0 {
			break
		}
		if n > maxName {
			return fmt.Errorf("%w: section name of %d bytes", ErrBadFormat, n)
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(br, name); err != nil {
			return fmt.Errorf("%w: snapshot truncated: %w", ErrBadFormat, err)
		}
		sm, ok := m.machines[string(name)]
		if !ok {
			return fmt.Errorf("%w: snapshot section %q", ErrUnknownMachine, name)
		}
		cr := &chunkReader{r: br}
		if err := sm.Restore(cr); err != nil {
			return fmt.Errorf("statemux: restore %s: %w", name, err)
		}
		// What the machine left unread is skipped, so the next section
		// starts where it should.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return fmt.Errorf("%w: section %s: %w", ErrBadFormat, name, err)
		}
		restored[sm] = true
	}
	return m.resetAllBut(restored)
}

func (m *Mux) resetAllBut(keep map[consensus.StateMachine]bool) error {
	for _, name := range m.names {
		sm := m.machines[name]
		if keep[sm] {
			continue
		}
		if r, ok := sm.(Resetter); ok {
			if err := r.Reset(); err != nil {
				return fmt.Errorf("statemux: reset %s: %w", name, err)
			}
		}
	}
	return nil
}

// chunkWriter frames what a machine's snapshot writes as length-prefixed
// chunks, ended by an empty one.
type chunkWriter struct {
	w   *bufio.Writer
	err error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && c.err == nil {
		k := min(len(p), chunkSize)
		_, _ = c.w.Write(binary.AppendUvarint(nil, uint64(k)))
		_, c.err = c.w.Write(p[:k])
		p, n = p[k:], n+k
	}
	return n, c.err
}

func (c *chunkWriter) Close() error {
	if c.err != nil {
		return c.err
	}
	return c.w.WriteByte(0)
}

// chunkReader reads one section's chunks and reports io.EOF at its end.
type chunkReader struct {
	r    *bufio.Reader
	left uint64
	done bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		n, err := binary.ReadUvarint(c.r)
		if err != nil {
			return 0, fmt.Errorf("%w: section truncated: %w", ErrBadFormat, err)
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		if n > chunkSize {
			return 0, fmt.Errorf("%w: chunk of %d bytes", ErrBadFormat, n)
		}
		c.left = n
	}
	if uint64(len(p)) > c.left {
		p = p[:c.left]
	}
	k, err := c.r.Read(p)
	c.left -= uint64(k)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: section truncated", ErrBadFormat)
	}
	return k, err
}
