package clusterconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// Proposer is the part of the log a Syncer proposes through, addressed to
// the configuration's Machine.
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
}

// Forwarder sends a configuration to the leader, which checks and commits
// it, and returns once it has. Implementations must be safe for concurrent
// use.
type Forwarder interface {
	Forward(ctx context.Context, leader *consensus.NotLeaderError, d Doc) (Result, error)
}

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	Machine *Machine
	Log     Proposer
	// Leader says whether this node leads: the first leader of a cluster
	// commits its own files as the first configuration.
	Leader func() consensus.LeaderInfo
	// Forwarder sends a follower's reload to the leader; nil: a follower
	// refuses a reload with ErrUnavailable.
	Forwarder Forwarder
	// Dir is where the configuration in service is written (Write).
	Dir string
	// Install puts a written configuration into service (rules,
	// Alertmanager); on error the previous one must keep running.
	Install func(Files) error
	NodeID  string
	Logger  *slog.Logger
	// Registerer takes the metrics; nil: none.
	Registerer prometheus.Registerer
}

// Syncer keeps this node running the committed configuration and takes
// this node's reloads to the log. Safe for concurrent use.
type Syncer struct {
	opts SyncerOptions

	mu         sync.Mutex // one install at a time
	installed  Doc        // in service here; generation 0: this node's own files
	installErr error      // the last committed one failed to install
	local      Doc        // this node's own files, at start or its last reload
	// compared: the first committed configuration installed since the
	// start was compared with this node's files.
	compared bool
	// bootstrapRefused: this node's files failed the check, so it does not
	// commit them as the first configuration (said once).
	bootstrapRefused bool
	// floor: the generation Start took from the data directory; the log
	// replaying older ones toward it is not installed (a flicker back to
	// an older configuration). Cleared once the log reaches it, or when
	// the log turns out to hold none (a new cluster).
	floor uint64

	generation, committed, installFailed, localDiffers prometheus.Gauge
}

// NewSyncer returns a Syncer; Start puts a configuration into service.
func NewSyncer(opts SyncerOptions) (*Syncer, error) {
	if opts.Machine == nil || opts.Log == nil || opts.Install == nil || opts.Dir == "" || opts.Leader == nil {
		return nil, errors.New("clusterconfig: syncer needs Machine, Log, Leader, Dir and Install")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(opts.Registerer)
	return &Syncer{
		opts: opts,
		generation: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_cluster_config_generation",
			Help: "Generation of the cluster-wide configuration (rules, SLOs, Alertmanager) in service on this node; 0 while none is committed and the node runs its own files.",
		}),
		committed: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_cluster_config_committed_generation",
			Help: "Latest generation of the cluster-wide configuration this node has applied from the log.",
		}),
		installFailed: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_cluster_config_install_failed",
			Help: "1 when the committed cluster-wide configuration could not be put into service on this node, which keeps running the previous one.",
		}),
		localDiffers: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_cluster_config_local_differs",
			Help: "1 when this node's own configuration files differ from the cluster-wide configuration in service (the cluster's wins until a reload).",
		}),
	}, nil
}

// Start puts into service the committed configuration if there is one,
// before the node may lead. A restarted node may learn what is committed
// only from the leader, after the start: until then it runs what it ran
// before, kept in the data directory, and only a node that never ran a
// committed one runs its own files. A failure is logged, leaves what runs,
// and is returned: the caller decides whether a node whose own files could
// not be put into service either may run.
func (s *Syncer) Start(local Doc) error {
	s.mu.Lock()
	s.local = local
	cur := s.opts.Machine.Current()
	s.mu.Unlock()
	if cur.Generation == 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if last, err := Written(s.opts.Dir); err == nil && last.Generation > 0 {
			if err := s.installLocked(last); err == nil {
				s.floor = last.Generation
				return nil
			}
		}
		// Written like a committed one, so that rule files keep their
		// paths (and their groups' state) when it is committed.
		if err := s.installLocked(local); err != nil {
			s.opts.Logger.Error("this node's configuration could not be put into service from the data directory; its files as read keep running", "err", err)
			return err
		}
		return nil
	}
	if err := s.Sync(); err != nil {
		s.opts.Logger.Error("the cluster's configuration could not be put into service on this node; its own files keep running", "err", err)
		return err
	}
	return nil
}

// Sync puts the committed configuration into service here if it is not
// yet; it returns the error of installing it.
func (s *Syncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.opts.Machine.Current()
	s.committed.Set(float64(cur.Generation))
	if cur.Generation == 0 || cur.Generation == s.installed.Generation || cur.Generation < s.floor {
		return nil
	}
	s.floor = 0
	return s.installLocked(cur)
}

func (s *Syncer) installLocked(d Doc) error {
	err := s.install(d)
	if err != nil {
		s.installErr = fmt.Errorf("%w: generation %d: %w", ErrNotInstalled, d.Generation, err)
		if d.Generation > 0 {
			s.installFailed.Set(1)
			s.opts.Logger.Error("committed configuration not put into service on this node; the previous one keeps running",
				"generation", d.Generation, "digest", d.Digest(), "running_generation", s.installed.Generation, "err", err)
		}
		return s.installErr
	}
	if d.Generation > 0 && !s.compared {
		// A restarted node learns the committed configuration at start
		// from a snapshot, or only once the leader tells it what is
		// committed: whichever comes first is compared.
		s.compared = true
		if diff := Diff(d, s.local); diff != "" {
			s.opts.Logger.Warn("this node's configuration files differ from the cluster's; the cluster's runs until a reload on some node",
				"generation", d.Generation, "digest", d.Digest(), "local_digest", s.local.Digest(), "difference", diff)
		}
	}
	if d.Generation > 0 {
		s.opts.Logger.Info("cluster configuration in service", "generation", d.Generation, "digest", d.Digest(), "origin", d.Origin,
			"change", Diff(s.installed, d))
	}
	s.installed, s.installErr = d, nil
	s.installFailed.Set(0)
	s.generation.Set(float64(d.Generation))
	if d.Digest() == s.local.Digest() {
		s.localDiffers.Set(0)
	} else {
		s.localDiffers.Set(1)
	}
	return nil
}

func (s *Syncer) install(d Doc) error {
	files, err := Write(d, s.opts.Dir)
	if err != nil {
		return err
	}
	return s.opts.Install(files)
}

// Run installs each configuration committed, and while this node leads a
// cluster that has none, commits its own, until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.opts.Machine.Changed():
			_ = s.Sync() // logged
		case <-t.C:
			s.bootstrap(ctx)
		}
	}
}

// bootstrap commits this node's files as the first configuration if it
// leads and there is none. Init is a no-op once there is one, so two
// leaders in quick succession cannot both set it.
func (s *Syncer) bootstrap(ctx context.Context) {
	if s.opts.Machine.Current().Generation != 0 || !s.opts.Leader().Self {
		return
	}
	s.mu.Lock()
	local := s.local
	s.floor = 0
	refused := s.bootstrapRefused
	s.mu.Unlock()
	if err := Check(local); err != nil {
		if !refused {
			s.opts.Logger.Error("leading a cluster with no configuration, but this node's files are invalid: none is committed until a reload", "err", err)
			s.mu.Lock()
			s.bootstrapRefused = true
			s.mu.Unlock()
		}
		return
	}
	local.Origin = s.opts.NodeID
	cmd, err := EncodeInit(local)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.opts.Log.Propose(ctx, cmd); err != nil {
		s.opts.Logger.Warn("first cluster configuration not committed yet; trying again", "err", err)
	}
}

// Reload commits d, this node's configuration just read and checked, for
// the whole cluster: through the leader, which checks it again. It returns
// once it is in service here: ErrNotInstalled when committed but not
// installed here (the others may run it), any other error when nothing
// was committed that this node knows of.
func (s *Syncer) Reload(ctx context.Context, d Doc) (Result, error) {
	d.Origin = s.opts.NodeID
	res, err := s.ProposeLocal(ctx, d)
	var nl *consensus.NotLeaderError
	if errors.As(err, &nl) {
		if s.opts.Forwarder == nil || nl.LeaderID == "" {
			return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		res, err = s.opts.Forwarder.Forward(ctx, nl, d)
	}
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	s.local = d
	s.mu.Unlock()
	if err := s.waitCommitted(ctx, res.Generation); err != nil {
		return res, err
	}
	if err := s.Sync(); err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.installed.Generation < res.Generation {
		// An unchanged configuration whose install failed before.
		return res, s.installErr
	}
	s.localDiffers.Set(0)
	return res, nil
}

// waitCommitted waits until this node has applied generation gen: a
// follower learns of the commit after the leader answered.
func (s *Syncer) waitCommitted(ctx context.Context, gen uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.opts.Machine.Current().Generation < gen {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: generation %d committed but not yet applied here: %w", ErrNotInstalled, gen, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// ProposeLocal checks d and proposes it on this node's log; it never
// forwards, and fails with a *consensus.NotLeaderError on a follower.
func (s *Syncer) ProposeLocal(ctx context.Context, d Doc) (Result, error) {
	if err := Check(d); err != nil {
		return Result{}, err
	}
	cmd, err := EncodeSet(d)
	if err != nil {
		return Result{}, err
	}
	b, err := s.opts.Log.Propose(ctx, cmd)
	if err != nil {
		return Result{}, err
	}
	return DecodeResult(b)
}

// Status is the configuration as one node runs it.
type Status struct {
	Node      string  `json:"node"`
	Committed Version `json:"committed"`
	Installed Version `json:"installed"`
	// InstallError is why Committed is not Installed on this node.
	InstallError string `json:"install_error,omitempty"`
	// LocalFilesDiffer: this node's own files are not what runs.
	LocalFilesDiffer bool `json:"local_files_differ"`
}

// Version names one configuration.
type Version struct {
	Generation uint64 `json:"generation"`
	Digest     string `json:"digest"`
	Origin     string `json:"origin,omitempty"`
}

// Status reports this node's configuration.
func (s *Syncer) Status() Status {
	cur := s.opts.Machine.Current()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Node:             s.opts.NodeID,
		Committed:        Version{Generation: cur.Generation, Digest: cur.Digest(), Origin: cur.Origin},
		Installed:        Version{Generation: s.installed.Generation, Digest: s.installed.Digest(), Origin: s.installed.Origin},
		LocalFilesDiffer: s.local.Digest() != s.installed.Digest(),
	}
	if s.installErr != nil && cur.Generation != s.installed.Generation {
		st.InstallError = s.installErr.Error()
	}
	return st
}

// Reinstall puts the configuration in service into service again: the
// node's own settings it is installed with (the evaluation interval, say)
// changed.
func (s *Syncer) Reinstall() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(s.installed); err != nil {
		return fmt.Errorf("%w: generation %d: %w", ErrNotInstalled, s.installed.Generation, err)
	}
	return nil
}
