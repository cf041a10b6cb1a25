package alerting

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Silences and the notification log are last-writer-wins maps: an entry is
// only ever replaced by one with a newer timestamp (UpdatedAt, or the
// notification's time) and only removed by garbage collection after it
// expired. That is what lets Alertmanager gossip them, and it is what this
// file relies on: a command is a batch of entries in Alertmanager's own
// wire form, applying it is Merge, and merging the same entries twice, or a
// snapshot over a state that already has some of them, changes nothing.
// The timestamps are chosen once, by the leader, before proposing, so every
// node merges the same values.

// Sentinel errors of the replicated silences.
var (
	// ErrInvalidSilence: the silence was refused before anything was
	// proposed (bad matchers, times, or size).
	ErrInvalidSilence = errors.New("alerting: invalid silence")
	// ErrBadCommand: a log entry or snapshot this version cannot read.
	ErrBadCommand = errors.New("alerting: unreadable replicated state")
	// ErrReadUnavailable: a read of the replicated state (silences, and
	// the configuration centre's, which share the log) cannot be
	// linearizable now (no leader confirmed the log's position, or this
	// node has not caught up with it); the local copy may be stale, so it
	// is not served.
	ErrReadUnavailable = errors.New("cluster: the replicated state cannot be read consistently now (no leader reachable, or this node is behind); retry")
)

// Command kinds: the first byte of every command.
const (
	cmdSilences byte = 's'
	cmdNflog    byte = 'n'
)

// snapshotMagic starts a snapshot, so that a snapshot of another state
// machine, or of a later format, is refused rather than misread.
var snapshotMagic = []byte("vigil-alerting-state/1\n")

// ReplicatedStateOptions configure a ReplicatedState.
type ReplicatedStateOptions struct {
	// Retention of expired silences and notification log entries (120h);
	// the same on every node.
	Retention time.Duration
	Logger    *slog.Logger
	// Registerer takes Alertmanager's silences and nflog metrics; nil: none.
	Registerer prometheus.Registerer
}

// ReplicatedState is the consensus.StateMachine holding the cluster's
// silences and notification log. It is built before the consensus node
// (which restores and replays into it at start) and handed to New through
// Options.Replication, by way of a Replicator, so the Alertmanager reads
// the replicated copies.
type ReplicatedState struct {
	retention time.Duration
	logger    *slog.Logger
	silences  *silence.Silences
	nflog     *nflog.Log

	// applying is the first byte of the nflog payload being merged by
	// Apply: Merge hands that same slice to the broadcast hook, which must
	// not propose it again.
	applying atomic.Pointer[byte]
	onNflog  atomic.Pointer[func([]byte)]
}

var _ consensus.StateMachine = (*ReplicatedState)(nil)

// NewReplicatedState returns an empty state; the consensus node fills it.
func NewReplicatedState(opts ReplicatedStateOptions) (*ReplicatedState, error) {
	if opts.Retention <= 0 {
		opts.Retention = 120 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	s := &ReplicatedState{retention: opts.Retention, logger: opts.Logger}
	var err error
	s.nflog, s.silences, err = openState(nil, nil, opts.Retention, opts.Logger, opts.Registerer, eventrecorder.NopRecorder())
	if err != nil {
		return nil, err
	}
	s.nflog.SetBroadcast(s.nflogBroadcast)
	return s, nil
}

// nflogBroadcast is called by the notification log, under its lock, for
// each entry the pipeline logs and for each entry Merge adds.
func (s *ReplicatedState) nflogBroadcast(b []byte) {
	if len(b) > 0 && s.applying.Load() == &b[0] {
		return // a committed entry being applied, not a new one
	}
	if f := s.onNflog.Load(); f != nil {
		(*f)(b)
	}
}

// Apply implements consensus.StateMachine. Merge reads the clock in one
// place: it skips entries already past their retention, which every node's
// garbage collection removes anyway; the state a read can see is the same.
func (s *ReplicatedState) Apply(cmd []byte) ([]byte, error) {
	if len(cmd) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrBadCommand)
	}
	payload := cmd[1:]
	switch cmd[0] {
	case cmdSilences:
		if err := s.silences.Merge(payload); err != nil {
			return nil, fmt.Errorf("%w: silences: %w", ErrBadCommand, err)
		}
	case cmdNflog:
		if len(payload) == 0 {
			return nil, nil
		}
		s.applying.Store(&payload[0])
		defer s.applying.Store(nil)
		if err := s.nflog.Merge(payload); err != nil {
			return nil, fmt.Errorf("%w: notification log: %w", ErrBadCommand, err)
		}
	default:
		return nil, fmt.Errorf("%w: unknown command kind %q", ErrBadCommand, cmd[0])
	}
	return nil, nil
}

// Snapshot implements consensus.StateMachine: both states in Alertmanager's
// snapshot format (the bytes of its silences and nflog files), each
// preceded by its length. On the leader the notification log also holds
// entries its pipeline logged that are not committed yet (they are written
// locally first, then proposed); a snapshot may carry them early, which a
// last-writer-wins merge makes the same as carrying them later.
func (s *ReplicatedState) Snapshot() (consensus.SnapshotFunc, error) {
	sil, err := s.silences.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("alerting: snapshot silences: %w", err)
	}
	nfl, err := s.nflog.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("alerting: snapshot notification log: %w", err)
	}
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		_, _ = bw.Write(snapshotMagic)
		for _, part := range [][]byte{sil, nfl} {
			_, _ = bw.Write(binary.AppendUvarint(nil, uint64(len(part))))
			_, _ = bw.Write(part)
		}
		return bw.Flush()
	}, nil
}

// Restore implements consensus.StateMachine. It merges the snapshot rather
// than replacing the state: Alertmanager offers no way to replace a running
// Silences' state, and for last-writer-wins maps the merge of a snapshot
// into a state that is older than it equals the snapshot. A node's state is
// never newer than the log it restores from, except for entries that
// expired and are collected anyway.
func (s *ReplicatedState) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return fmt.Errorf("%w: not a vigil alerting snapshot", ErrBadCommand)
	}
	var parts [2][]byte
	for i := range parts {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("%w: snapshot length: %w", ErrBadCommand, err)
		}
		parts[i] = make([]byte, n)
		if _, err := io.ReadFull(br, parts[i]); err != nil {
			return fmt.Errorf("%w: snapshot truncated: %w", ErrBadCommand, err)
		}
	}
	if err := s.silences.Merge(parts[0]); err != nil {
		return fmt.Errorf("%w: silences: %w", ErrBadCommand, err)
	}
	if len(parts[1]) > 0 {
		s.applying.Store(&parts[1][0])
		defer s.applying.Store(nil)
		if err := s.nflog.Merge(parts[1]); err != nil {
			return fmt.Errorf("%w: notification log: %w", ErrBadCommand, err)
		}
	}
	return nil
}

// Silences are the replicated silences, for reading; writes go through a
// Replicator.
func (s *ReplicatedState) Silences() *silence.Silences { return s.silences }

// scratch returns a private copy of the silences whose changes are
// captured instead of applied: the leader runs Alertmanager's own Set and
// Expire on it (validation, ids, the expire-and-replace rule), and what
// they would have gossiped becomes the command.
func (s *ReplicatedState) scratch() (*silence.Silences, *bytes.Buffer, error) {
	b, err := s.silences.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	sc, err := silence.New(silence.Options{
		SnapshotReader: bytes.NewReader(b),
		Retention:      s.retention,
		Metrics:        prometheus.NewRegistry(),
		EventRecorder:  eventrecorder.NopRecorder(),
	})
	if err != nil {
		return nil, nil, err
	}
	captured := new(bytes.Buffer)
	// Called synchronously inside Set and Expire, so reading captured after
	// they return sees everything.
	sc.SetBroadcast(func(b []byte) { captured.Write(b) })
	return sc, captured, nil
}

// Proposer is the part of consensus.Replicated and consensus.Fencer a
// Replicator uses.
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
	Barrier(ctx context.Context) error
	Fence(ctx context.Context) (uint64, error)
}

// ReplicatorOptions configure a Replicator.
type ReplicatorOptions struct {
	State *ReplicatedState
	Log   Proposer
	// Forwarder sends a follower's silence writes to the leader; nil: a
	// follower refuses them with a *consensus.NotLeaderError.
	Forwarder Forwarder
	Logger    *slog.Logger
	// NflogQueue is how many notification log entries may wait to be
	// proposed (1024); beyond it entries are dropped and counted, as a
	// notification must never wait on the log.
	NflogQueue int
	// Registerer takes the replication metrics; nil: none.
	Registerer prometheus.Registerer
	// ReadTimeout bounds how long a silence read waits for the leader's
	// read index and for this node to apply up to it (2s); after it the
	// read fails with ErrReadUnavailable rather than answer stale.
	ReadTimeout time.Duration
}

// Replicator makes silence writes cluster-wide and proposes the leader's
// notification log entries. Safe for concurrent use.
type Replicator struct {
	opts  ReplicatorOptions
	state *ReplicatedState

	writeMu sync.Mutex // one silence write at a time, so each sees the last
	// inDoubt (under writeMu): a proposal failed without saying whether
	// it was committed, so it may still be applied; the next write waits
	// for the log with a barrier instead of trusting the fence's.
	inDoubt bool

	nflogc      chan []byte
	nflogLost   *prometheus.CounterVec
	silenceErrs prometheus.Counter
}

// NewReplicator returns a Replicator; Run proposes notification log entries.
func NewReplicator(opts ReplicatorOptions) (*Replicator, error) {
	if opts.State == nil || opts.Log == nil {
		return nil, errors.New("alerting: replicator needs State and Log")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.NflogQueue <= 0 {
		opts.NflogQueue = 1024
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 2 * time.Second
	}
	f := promauto.With(opts.Registerer)
	r := &Replicator{
		opts: opts, state: opts.State, nflogc: make(chan []byte, opts.NflogQueue),
		nflogLost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_nflog_replication_lost_total",
			Help: "Notification log entries logged on this node but not replicated, by reason (queue_full, propose_failed).",
		}, []string{"reason"}),
		silenceErrs: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alertmanager_silence_replication_errors_total",
			Help: "Silence writes that failed to be committed to the cluster (refusals of invalid silences are not counted).",
		}),
	}
	enqueue := r.enqueueNflog
	opts.State.onNflog.Store(&enqueue)
	return r, nil
}

// enqueueNflog runs under the notification log's lock, so it must not
// propose (applying the entry takes that lock): it hands the entry to Run.
func (r *Replicator) enqueueNflog(b []byte) {
	select {
	case r.nflogc <- append([]byte{cmdNflog}, b...):
	default:
		r.nflogLost.WithLabelValues("queue_full").Inc()
	}
}

// Run proposes the notification log entries this node logs until ctx ends;
// Alertmanager.Run runs it for Options.Replication. Only the leader
// notifies; an entry a deposed node logs is refused by the log and
// dropped, which costs at most a repeated notification.
func (r *Replicator) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-r.nflogc:
			if _, err := r.opts.Log.Propose(ctx, cmd); err != nil && ctx.Err() == nil {
				r.nflogLost.WithLabelValues("propose_failed").Inc()
				r.opts.Logger.Warn("notification log entry not replicated", "err", err)
			}
		}
	}
}

// SilenceOp is one silence write: Set when Silence is non-nil, otherwise
// Expire of ExpireID.
type SilenceOp struct {
	Silence  *silencepb.Silence
	ExpireID string
}

// SilenceWrite is the outcome of a committed SilenceOp: the silence's id
// and the UpdatedAt it was written with, by which a node can tell that it
// has applied the write.
type SilenceWrite struct {
	ID        string
	UpdatedAt time.Time
	// Index, when not zero, is a log position at or after the write's (the
	// leader's last applied command when it answered), for a
	// consensus.ReadIndexer's WaitApplied.
	Index uint64
}

// appliedIndexer is a backend's position of the last command its local
// state machine applied, as a consensus.ReadIndexer counts positions.
type appliedIndexer interface {
	AppliedIndex() uint64
}

// Do applies op cluster-wide and returns once it is committed and applied
// on this node: on the leader directly, on a follower through the
// Forwarder.
func (r *Replicator) Do(ctx context.Context, op SilenceOp) (res SilenceWrite, err error) {
	defer func() {
		if err != nil && !errors.Is(err, ErrInvalidSilence) && !errors.Is(err, silence.ErrNotFound) {
			r.silenceErrs.Inc()
		}
	}()
	res, err = r.DoLocal(ctx, op)
	var nl *consensus.NotLeaderError
	if !errors.As(err, &nl) || r.opts.Forwarder == nil {
		return res, err
	}
	res, err = r.opts.Forwarder.Forward(ctx, nl, op)
	if err != nil {
		return SilenceWrite{}, err
	}
	// The leader answered once the write was committed, but this node may
	// not have applied it yet; wait, so that a read here right after the
	// answer sees the write even without a read barrier.
	if rd, ok := r.opts.Log.(consensus.ReadIndexer); ok && res.Index > 0 {
		if err := rd.WaitApplied(ctx, res.Index); err != nil {
			return SilenceWrite{}, fmt.Errorf("alerting: silence %s committed but not yet applied here: %w", res.ID, err)
		}
		return res, nil
	}
	return res, r.waitApplied(ctx, res)
}

// waitApplied polls the local silences until the write res shows, for a
// leader that does not say where its write is in the log.
func (r *Replicator) waitApplied(ctx context.Context, res SilenceWrite) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		sil, err := r.state.silences.QueryOne(ctx, silence.QIDs(res.ID))
		if err == nil && !sil.UpdatedAt.AsTime().Before(res.UpdatedAt) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("alerting: silence %s committed but not yet applied here: %w", res.ID, ctx.Err())
		case <-t.C:
		}
	}
}

// DoLocal runs op on a scratch copy of the committed silences and proposes
// what changed; it never forwards. It fails with a
// *consensus.NotLeaderError on a follower.
func (r *Replicator) DoLocal(ctx context.Context, op SilenceOp) (SilenceWrite, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	// The scratch copy must include every committed write. A new leader
	// may not have applied its predecessor's last ones yet: the fence
	// waits for them once per term. Within a term only this node
	// proposes, one write at a time, each applied here before Propose
	// returns; only one whose outcome is in doubt needs a barrier, which
	// costs a log write where the fence costs a heartbeat.
	if r.inDoubt {
		if err := r.opts.Log.Barrier(ctx); err != nil {
			return SilenceWrite{}, err
		}
		r.inDoubt = false
	} else if _, err := r.opts.Log.Fence(ctx); err != nil {
		return SilenceWrite{}, err
	}
	sc, captured, err := r.state.scratch()
	if err != nil {
		return SilenceWrite{}, err
	}
	var id string
	if op.Silence != nil {
		sil := cloneSilencePB(op.Silence)
		if err := sc.Set(ctx, sil); err != nil {
			if errors.Is(err, silence.ErrNotFound) {
				return SilenceWrite{}, err
			}
			return SilenceWrite{}, fmt.Errorf("%w: %w", ErrInvalidSilence, err)
		}
		id = sil.Id
	} else {
		if err := sc.Expire(ctx, op.ExpireID); err != nil {
			return SilenceWrite{}, err
		}
		id = op.ExpireID
	}
	written, err := sc.QueryOne(ctx, silence.QIDs(id))
	if err != nil {
		return SilenceWrite{}, err
	}
	res := SilenceWrite{ID: id, UpdatedAt: written.UpdatedAt.AsTime()}
	if captured.Len() == 0 {
		return res, nil // nothing changed (expiring an expired silence)
	}
	cmd := append([]byte{cmdSilences}, captured.Bytes()...)
	if _, err := r.opts.Log.Propose(ctx, cmd); err != nil {
		r.inDoubt = true
		return SilenceWrite{}, err
	}
	return res, nil
}

// ReadBarrier returns once a read of the local silences is linearizable:
// it reflects every silence write acknowledged, on any node, before the
// call. It learns the log position that covers them (consensus.ReadIndexer;
// on a raft follower, from the leader through the Forwarder, which must
// then be a ReadIndexForwarder) and waits until this node has applied up
// to it. Without a leader to confirm the position, or when this node does
// not catch up within ReadTimeout, it fails with ErrReadUnavailable. A Log
// that is no ReadIndexer makes reads local, as before clusters had this.
func (r *Replicator) ReadBarrier(ctx context.Context) error {
	rd, ok := r.opts.Log.(consensus.ReadIndexer)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.ReadTimeout)
	defer cancel()
	index, err := rd.ReadIndex(ctx)
	var nl *consensus.NotLeaderError
	if errors.As(err, &nl) {
		if f, ok := r.opts.Forwarder.(ReadIndexForwarder); ok {
			index, err = f.ReadIndex(ctx, nl)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: no read index: %w", ErrReadUnavailable, err)
	}
	if err := rd.WaitApplied(ctx, index); err != nil {
		return fmt.Errorf("%w: this node has not applied the log up to the read index %d: %w", ErrReadUnavailable, index, err)
	}
	return nil
}

func cloneSilencePB(s *silencepb.Silence) *silencepb.Silence {
	return proto.Clone(s).(*silencepb.Silence)
}
