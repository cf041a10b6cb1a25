// Package profilescrape pulls profiles from the /debug/pprof endpoints of
// targets that opt in through profile_scrape_configs: Prometheus's own
// service discovery manager finds them, Prometheus's relabelling labels
// them as it labels scrape targets, and each profile taken goes through
// the same checks, limits and store write as a pushed one
// (pyroscope.Writer).
//
// Each target has one loop: every scrape interval it fetches its enabled
// profiles one after the other (so a target never serves two of vigil's
// requests at once), the CPU profile last since it lasts. Targets run
// independently: a slow or failing one delays no other.
package profilescrape

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/ingest/pyroscope"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage"

	// Every service-discovery mechanism registers its configuration type
	// here, so a job may use any of them.
	_ "github.com/prometheus/prometheus/discovery/install"
)

// ProfileWriter checks and stores one profile; *pyroscope.Writer is one.
// Write is called from every target's loop at once.
type ProfileWriter interface {
	Write(ctx context.Context, u pyroscope.Upload) error
}

// Results of vigil_profile_scrapes_total.
const (
	ResultSuccess = "success"
	// ResultFailed: the target did not answer a profile (connection,
	// timeout, a status other than 200).
	ResultFailed = "failed"
	// ResultRejected: the answer is no profile vigil takes (not a pprof,
	// past the limits, wrong sample types); counted in
	// vigil_rejected_total{signal="profiles"} too.
	ResultRejected = "rejected"
	// ResultUnavailable: vigil was busy or its storage failed; the next
	// scrape tries again.
	ResultUnavailable = "unavailable"
)

// Options configure a Scraper.
type Options struct {
	// Writer stores the profiles. Required.
	Writer ProfileWriter
	// Limits bound each answer: reading stops past Limits.MaxBytes (the
	// same bound a pushed pprof has once decompressed), and the pprof's
	// tables are counted before it is parsed.
	Limits pyroscope.ProfileLimits
	// DecodeBudget bounds the memory of profiles being read and parsed;
	// share the receivers'. Nil: a default of its own.
	DecodeBudget *decodecost.Budget
	// Ingest counts received and rejected profiles; nil: not counted.
	Ingest *selfobs.IngestMetrics
	// SDMetrics are the service discovery mechanisms' metrics, which a
	// registry holds once: share the metric scraper's. Nil: registered
	// on Registerer.
	SDMetrics *discovery.SDMetrics
	// Registerer receives vigil_profile_scrapes_total and the discovery
	// manager's metrics (name="profile_scrape"); nil: a private registry.
	Registerer prometheus.Registerer
	// Writing, when set, lets targets be scraped only while it reports
	// true: the nodes of a cluster on a shared store would each store
	// the same profiles (and a process serves one CPU profile at a
	// time), so one node scrapes. Nil scrapes always.
	Writing func() bool
	// DiscoveryUpdateInterval throttles target updates from discovery;
	// zero is Prometheus's 5 s.
	DiscoveryUpdateInterval time.Duration
	Logger                  *slog.Logger
	Now                     func() time.Time
}

// Scraper runs the profile_scrape_configs jobs. Run it as a component
// (Run may run again after it returned, with the last configuration);
// ApplyConfig may be called at any time.
type Scraper struct {
	opts      Options
	sdMetrics *discovery.SDMetrics
	scrapes   *prometheus.CounterVec

	mu    sync.Mutex
	jobs  []*JobConfig
	pools map[string]*pool
	dm    *discovery.Manager // while Run runs
	ctx   context.Context    // Run's
}

// New returns a Scraper; it panics without opts.Writer.
func New(opts Options) (*Scraper, error) {
	if opts.Writer == nil {
		panic("profilescrape: Options.Writer is required")
	}
	opts.Limits = opts.Limits.WithDefaults()
	if opts.DecodeBudget == nil {
		opts.DecodeBudget = decodecost.NewBudget(decodecost.DefaultSize)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.DiscoveryUpdateInterval <= 0 {
		opts.DiscoveryUpdateInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sdm := opts.SDMetrics
	if sdm == nil {
		var err error
		if sdm, err = discovery.CreateAndRegisterSDMetrics(opts.Registerer); err != nil {
			return nil, fmt.Errorf("profilescrape: registering service discovery metrics: %w", err)
		}
	}
	s := &Scraper{
		opts: opts, sdMetrics: sdm, pools: map[string]*pool{},
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_profile_scrapes_total",
			Help: "Profiles fetched from profile_scrape_configs targets, by job, profile kind and result (success, failed, rejected, unavailable).",
		}, []string{"job", "profile", "result"}),
	}
	if err := opts.Registerer.Register(s.scrapes); err != nil {
		return nil, fmt.Errorf("profilescrape: %w", err)
	}
	return s, nil
}

// ApplyConfig installs jobs (from Decode). While Run runs, jobs that
// changed restart their targets, removed ones stop, new ones start;
// unchanged jobs go on as they were, the previous scrape of their
// cumulative profiles kept.
func (s *Scraper) ApplyConfig(jobs []*JobConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dm != nil {
		if err := s.applyLocked(jobs); err != nil {
			return err
		}
	}
	s.jobs = jobs
	return nil
}

// applyLocked builds every new or changed job's HTTP client first, so a
// job that cannot be applied changes nothing.
func (s *Scraper) applyLocked(jobs []*JobConfig) error {
	clients := map[string]*http.Client{}
	for _, j := range jobs {
		if p := s.pools[j.JobName]; p != nil && p.cfg.equal(j) {
			continue
		}
		c, err := newClient(j)
		if err != nil {
			return err
		}
		clients[j.JobName] = c
	}
	sd := make(map[string]discovery.Configs, len(jobs))
	next := make(map[string]*pool, len(jobs))
	for _, j := range jobs {
		sd[j.JobName] = j.ServiceDiscoveryConfigs
		p := s.pools[j.JobName]
		delete(s.pools, j.JobName)
		switch {
		case p == nil:
			p = &pool{s: s, ctx: s.ctx, cfg: j, client: clients[j.JobName], targets: map[string]*target{}}
		case clients[j.JobName] != nil:
			p.reconfigure(j, clients[j.JobName])
		}
		next[j.JobName] = p
	}
	for _, p := range s.pools {
		p.stop()
	}
	s.pools = next
	if err := s.dm.ApplyConfig(sd); err != nil {
		return fmt.Errorf("profile scrape discovery: %w", err)
	}
	return nil
}

// CheckConfig reports what ApplyConfig would refuse of jobs (an HTTP
// client that cannot be built, as a CA file that cannot be read), so a
// reload can check every part before applying any.
func CheckConfig(jobs []*JobConfig) error {
	for _, j := range jobs {
		c, err := newClient(j)
		if err != nil {
			return err
		}
		c.CloseIdleConnections()
	}
	return nil
}

// newClient is the HTTP client of job j: Prometheus's, from its settings.
func newClient(j *JobConfig) (*http.Client, error) {
	c, err := commoncfg.NewClientFromConfig(j.HTTPClientConfig, "profile_scrape_"+j.JobName)
	if err != nil {
		return nil, fmt.Errorf("profile scrape job %q: %w", j.JobName, err)
	}
	return c, nil
}

// Run discovers and scrapes the targets until ctx ends, then stops every
// target's loop (a profile being fetched is abandoned) and returns.
func (s *Scraper) Run(ctx context.Context) error {
	dm := discovery.NewManager(ctx, s.opts.Logger.With("component", "discovery manager profile_scrape"), s.opts.Registerer, s.sdMetrics,
		discovery.Name("profile_scrape"), discovery.Updatert(s.opts.DiscoveryUpdateInterval))
	if dm == nil {
		return errors.New("profilescrape: creating the discovery manager failed (see log)")
	}
	defer dm.UnregisterMetrics()
	s.mu.Lock()
	s.dm, s.ctx = dm, ctx
	err := s.applyLocked(s.jobs)
	s.mu.Unlock()
	if err != nil {
		s.mu.Lock()
		s.dm, s.ctx = nil, nil
		s.mu.Unlock()
		return err
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = dm.Run() // returns once ctx ends
	}()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			pools := s.pools
			s.pools, s.dm, s.ctx = map[string]*pool{}, nil, nil
			s.mu.Unlock()
			for _, p := range pools {
				p.stop()
			}
			<-ran
			return nil
		case tgs := <-dm.SyncCh():
			// As Prometheus's scrape manager: a job discovery says nothing
			// of keeps its targets (one that lost them all comes with
			// empty groups).
			s.mu.Lock()
			for job, groups := range tgs {
				if p := s.pools[job]; p != nil {
					p.sync(groups)
				}
			}
			s.mu.Unlock()
		}
	}
}

// pool is one job's targets.
type pool struct {
	s      *Scraper
	ctx    context.Context
	cfg    *JobConfig
	client *http.Client
	groups []*targetgroup.Group
	// targets by key (URL and labels); a target is replaced, not
	// changed, when its labels or the job's configuration change.
	targets map[string]*target
	// errs are the last sync's targets that could not be built
	// (relabelling left no address, a bad interval label).
	errs []error
}

// sync installs the job's target groups as discovery last saw them.
func (p *pool) sync(groups []*targetgroup.Group) {
	p.groups = groups
	lb := labels.NewBuilder(labels.EmptyLabels())
	want := map[string]*promscrape.Target{}
	p.errs = p.errs[:0]
	var built []*promscrape.Target
	for _, tg := range groups {
		if tg == nil {
			continue
		}
		var errs []error
		built, errs = promscrape.TargetsFromGroup(tg, p.cfg.scrape, built, lb)
		p.errs = append(p.errs, errs...)
		for _, t := range built {
			want[t.URL().String()+t.Labels(lb).String()] = t
		}
	}
	for k, t := range p.targets {
		if want[k] == nil {
			t.stop()
			delete(p.targets, k)
		}
	}
	for k, pt := range want {
		if p.targets[k] != nil {
			continue
		}
		t := newTarget(p, pt, lb)
		p.targets[k] = t
		t.start(p.ctx)
	}
	for _, err := range p.errs {
		p.s.opts.Logger.Warn("profile scrape target dropped", "job", p.cfg.JobName, "err", err)
	}
}

// reconfigure restarts the job's targets with cfg.
func (p *pool) reconfigure(cfg *JobConfig, client *http.Client) {
	p.stop()
	p.cfg, p.client = cfg, client
	p.sync(p.groups)
}

// stop ends every target's loop and waits for it, then closes the
// connections kept alive to the targets.
func (p *pool) stop() {
	for _, t := range p.targets {
		t.cancel()
	}
	for k, t := range p.targets {
		<-t.done
		delete(p.targets, k)
	}
	p.client.CloseIdleConnections()
}

// target is one endpoint of a job and its scrape loop.
type target struct {
	s       *Scraper
	cfg     *JobConfig
	client  *http.Client
	labels  labels.Labels // after relabelling, without __ labels
	base    string        // scheme://address
	service string
	plabels map[string]string // the profile's labels
	offset  time.Duration

	cancel context.CancelFunc
	done   chan struct{}

	// Only the loop touches prev and prevAt.
	prev   map[string]*cumulative
	prevAt map[string]time.Time

	mu     sync.Mutex
	status map[string]*profileStatus // by kind
}

// profileStatus is the last scrape of one profile of a target.
type profileStatus struct {
	url      string
	last     time.Time
	duration time.Duration
	err      error
}

func newTarget(p *pool, pt *promscrape.Target, lb *labels.Builder) *target {
	ls := pt.Labels(lb)
	u := pt.URL()
	u.Path = ""
	t := &target{
		s: p.s, cfg: p.cfg, client: p.client, labels: ls, base: (&url.URL{Scheme: u.Scheme, Host: u.Host}).String(),
		prev: map[string]*cumulative{}, prevAt: map[string]time.Time{}, status: map[string]*profileStatus{},
	}
	// The profile is the service's: service_name if relabelling set it,
	// else the job. The other labels are the profile's, as a pushed
	// profile's labels are; job only when it is not the service.
	t.service = ls.Get("service_name")
	t.plabels = ls.Map()
	delete(t.plabels, "service_name")
	if t.service == "" {
		t.service = ls.Get(model.JobLabel)
		delete(t.plabels, model.JobLabel)
	}
	// Spread the targets over the interval, as Prometheus does, so that
	// a job's targets are not all asked at the same instant.
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.base + ls.String()))
	t.offset = time.Duration(h.Sum64() % uint64(time.Duration(p.cfg.ScrapeInterval)))
	for _, k := range p.cfg.enabled() {
		t.status[k] = &profileStatus{url: t.profileURL(u, k)}
	}
	return t
}

// profileURL is where kind is fetched from: the target's address and
// __param_* query, the profile's path (and any query it has), and a CPU
// profile's seconds.
func (t *target) profileURL(base *url.URL, kind string) string {
	pc := t.cfg.Profiles[kind]
	u := *base
	q := u.Query()
	if p, err := url.Parse(pc.Path); err == nil {
		u.Path = p.Path
		for k, vs := range p.Query() {
			q[k] = vs
		}
	} else {
		u.Path = pc.Path
	}
	if kind == storage.ProfileCPU {
		q.Set("seconds", strconv.Itoa(pc.Seconds))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (t *target) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	t.cancel, t.done = cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		t.run(ctx)
	}()
}

func (t *target) stop() {
	t.cancel()
	<-t.done
}

func (t *target) run(ctx context.Context) {
	wait := time.NewTimer(t.offset)
	select {
	case <-ctx.Done():
		wait.Stop()
		return
	case <-wait.C:
	}
	// A scrape longer than the interval skips the ticks it overran.
	tick := time.NewTicker(time.Duration(t.cfg.ScrapeInterval))
	defer tick.Stop()
	for {
		for _, k := range t.cfg.enabled() {
			if ctx.Err() != nil || (t.s.opts.Writing != nil && !t.s.opts.Writing()) {
				break
			}
			t.scrape(ctx, k)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrape fetches, checks and stores one profile, and notes how it went.
func (t *target) scrape(ctx context.Context, kind string) {
	st := t.statusOf(kind)
	start := t.s.opts.Now()
	result, err := t.take(ctx, kind, st.url, start)
	if ctx.Err() != nil {
		return // stopping: neither a failure nor a scrape
	}
	t.s.scrapes.WithLabelValues(t.cfg.JobName, kind, result).Inc()
	t.mu.Lock()
	st.last, st.duration, st.err = start, t.s.opts.Now().Sub(start), err
	t.mu.Unlock()
	if err != nil {
		t.s.opts.Logger.Debug("profile scrape failed", "job", t.cfg.JobName, "url", st.url, "result", result, "err", err)
	}
}

func (t *target) statusOf(kind string) *profileStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status[kind]
}

// take is one profile's scrape; it returns its result and, unless it
// succeeded, why.
func (t *target) take(ctx context.Context, kind, url string, start time.Time) (string, error) {
	o := t.s.opts
	reqCtx, cancel := context.WithTimeout(ctx, time.Duration(t.cfg.ScrapeTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
	if err != nil {
		return ResultFailed, err
	}
	req.Header.Set("User-Agent", "vigil-profile-scraper")
	resp, err := t.client.Do(req)
	if err != nil {
		return ResultFailed, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return ResultFailed, fmt.Errorf("server returned HTTP status %s", resp.Status)
	}

	res := o.DecodeBudget.Start()
	defer res.Release()
	o.Ingest.Receive(ingest.SignalProfiles, 1)
	source := t.cfg.JobName + " " + t.base
	body, err := io.ReadAll(io.LimitReader(decodecost.ChargingReader(resp.Body, res, 64<<10), o.Limits.MaxBytes+1))
	switch {
	case errors.Is(err, decodecost.ErrBusy):
		o.Ingest.Reject(ingest.SignalProfiles, limits.ReasonOverloaded, 1)
		return ResultUnavailable, ingest.ErrOverloaded
	case errors.Is(err, decodecost.ErrTooLarge):
		o.Ingest.RejectFrom(ingest.SignalProfiles, limits.ReasonProfileTooLarge, source, 1)
		return ResultRejected, fmt.Errorf("%w: the answer is larger than the decode budget", err)
	case err != nil:
		return ResultFailed, fmt.Errorf("reading the answer: %w", err)
	case int64(len(body)) > o.Limits.MaxBytes:
		o.Ingest.RejectFrom(ingest.SignalProfiles, limits.ReasonProfileTooLarge, source, 1)
		return ResultRejected, fmt.Errorf("the answer is larger than %d bytes", o.Limits.MaxBytes)
	}
	end := o.Now()
	// What parsing will hold, paid before it is taken, as for a push.
	if err := res.Resize(res.Held() + pyroscope.ParseCost*int64(len(body))); err != nil {
		o.Ingest.Reject(ingest.SignalProfiles, limits.ReasonOverloaded, 1)
		return ResultUnavailable, fmt.Errorf("%w: %w", ingest.ErrOverloaded, err)
	}
	prof, err := pyroscope.ParseProfile(body, o.Limits)
	if err != nil {
		return t.rejected(err, source)
	}

	// The range a profile covers: a CPU profile its seconds; what grew
	// since the previous scrape from then; a state (in use, goroutines,
	// or a first scrape) the interval up to now.
	from, until := end.Add(-time.Duration(t.cfg.ScrapeInterval)), end
	next, outcome := delta(prof, t.prev[kind])
	switch {
	case kind == storage.ProfileCPU:
		from = start
	case outcome == subtracted || outcome == reset:
		if at, ok := t.prevAt[kind]; ok {
			from = at
		}
	}
	t.prev[kind], t.prevAt[kind] = next, end
	if len(prof.Sample) == 0 {
		// Nothing happened (no contention, no allocation since the last
		// scrape, or a first scrape of a cumulative profile).
		return ResultSuccess, nil
	}
	err = o.Writer.Write(ctx, pyroscope.Upload{
		App: t.service, Kind: kind, Labels: maps.Clone(t.plabels),
		Start: from, End: until, Profile: prof,
	})
	if err != nil {
		return t.rejected(err, source)
	}
	return ResultSuccess, nil
}

// rejected counts a refused profile as a push's refusal is counted.
func (t *target) rejected(err error, source string) (string, error) {
	var rj *pyroscope.Rejection
	if !errors.As(err, &rj) {
		return ResultUnavailable, err
	}
	m := t.s.opts.Ingest
	switch {
	case rj.Retryable():
		if rj.Reason != "" {
			m.Reject(ingest.SignalProfiles, rj.Reason, 1)
		}
		return ResultUnavailable, err
	default:
		m.RejectFrom(ingest.SignalProfiles, rj.Reason, source, 1)
		return ResultRejected, fmt.Errorf("%s: %w", rj.Reason, err)
	}
}

// TargetStatus is a target as /api/v1/profiles/targets shows it.
type TargetStatus struct {
	Job     string
	Labels  map[string]string
	URL     string
	Service string
	// Profiles, in scrape order.
	Profiles []ProfileStatus
}

// ProfileStatus is the last scrape of one profile of a target.
type ProfileStatus struct {
	Kind, URL  string
	LastScrape time.Time // zero: not scraped yet
	Duration   time.Duration
	Err        error
}

// Targets returns the active targets, by job then URL.
func (s *Scraper) Targets() []TargetStatus {
	s.mu.Lock()
	var ts []*target
	for _, p := range s.pools {
		for _, t := range p.targets {
			ts = append(ts, t)
		}
	}
	s.mu.Unlock()
	out := make([]TargetStatus, 0, len(ts))
	for _, t := range ts {
		ps := TargetStatus{Job: t.cfg.JobName, Labels: t.labels.Map(), URL: t.base, Service: t.service}
		t.mu.Lock()
		for _, k := range t.cfg.enabled() {
			st := t.status[k]
			ps.Profiles = append(ps.Profiles, ProfileStatus{Kind: k, URL: st.url, LastScrape: st.last, Duration: st.duration, Err: st.err})
		}
		t.mu.Unlock()
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b TargetStatus) int {
		if c := strings.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		return strings.Compare(a.URL+labels.FromMap(a.Labels).String(), b.URL+labels.FromMap(b.Labels).String())
	})
	return out
}
