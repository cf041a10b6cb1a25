// Package alerting is vigil's embedded Alertmanager: routing, grouping,
// inhibition, silences and notification, built from Alertmanager's own
// packages and configured by an alertmanager.yml in Alertmanager's format.
//
// Alerts come in from Prometheus's rules manager (Notify is a
// rules.NotifyFunc; Send takes what rules.SendAlerts produces) or over the
// Alertmanager v2 API (Handler), which is also what amtool and Grafana talk
// to. Silences and the notification log live in a StateStore and are saved
// synchronously on every silence change, so a silence survives kill -9.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"

	"github.com/vigil-observability/vigil/internal/ui"
)

// Names of the blobs in the StateStore; the same as the files Alertmanager
// keeps in its --storage.path.
const (
	stateSilences = "silences"
	stateNflog    = "nflog"
)

// Options configures an Alertmanager. Zero values get the defaults noted.
type Options struct {
	// ConfigFile is an alertmanager.yml in Alertmanager's own format.
	// Relative template paths in it are resolved against its directory.
	ConfigFile string
	// DataDir keeps silences and the notification log when State is nil.
	DataDir string
	// State replaces the local files in DataDir (a replicated store).
	State StateStore
	// Replication, when set, makes silences and the notification log the
	// cluster's: they are read from its ReplicatedState (not loaded from
	// State), silence writes through Handler are committed to the cluster
	// before the answer, and Run proposes the notification log entries
	// this node logs. State is still written, but not read back: the
	// cluster's log and snapshots are what a restarted node starts from.
	Replication *Replicator
	// Fencer, when set, makes this a clustered node: a notification is sent
	// only while Fence succeeds, and webhooks carry its token in the
	// LeaderTermHeader. While Leader says another node leads, groups are
	// not even tried: see leaderGate.
	Fencer ClusterLeader
	// ExternalURL is where vigil is reachable: links in notifications
	// (silence links, .ExternalURL) and the base of the generator URLs
	// Notify gives alerts. Required.
	ExternalURL *url.URL
	// ExternalLabels are added to alerts from Send and Notify that do not
	// have them, as Prometheus's notifier does.
	ExternalLabels labels.Labels
	// Retention of expired silences and notification log entries (120h).
	Retention time.Duration
	// MaintenanceInterval between garbage collection and periodic snapshots
	// (15m). Silence changes are saved at once regardless.
	MaintenanceInterval time.Duration
	// AlertGCInterval between removals of resolved alerts (30m).
	AlertGCInterval time.Duration
	// AllowOutbound are link-local or cloud metadata ranges notifications
	// may connect to; every other such address is refused (see
	// ParseAllowOutbound).
	AllowOutbound []netip.Prefix

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Alertmanager is an embedded Alertmanager. Build it with New, run it with
// Run; Handler, Send and Notify may be used before Run (alerts are
// dispatched once it runs). All methods are safe for concurrent use.
type Alertmanager struct {
	opts        Options
	logger      *slog.Logger
	state       StateStore
	externalURL *url.URL
	metrics     *metrics

	alerts      *mem.Alerts
	silences    *silence.Silences
	silencer    *silence.Silencer
	nflog       *nflog.Log
	groupMarker marker.GroupMarker
	api         *api.API
	handler     http.Handler
	pipelines   *notify.PipelineBuilder
	dispMetrics *dispatch.DispatcherMetrics
	recorder    eventrecorder.Recorder
	deliveries  *deliveryLog
	outbound    *outboundPolicy

	nflogDirty chan struct{}

	// The running dispatcher and inhibitor, read by API handlers. These
	// are atomics, not under mtx: the API calls setAlertStatus while
	// holding its own lock, which ApplyConfig takes in api.Update.
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]

	applyMtx sync.Mutex // serialises ApplyConfig
	mtx      sync.Mutex // guards the fields below
	conf     *config.Config
	running  bool
	stopped  bool
	gen      *generation // the config-scoped pipeline to start

	stopOnce sync.Once
	stopc    chan struct{} // closed by Stop
	done     chan struct{} // closed when Run has torn everything down
}

// generation is everything rebuilt from one config.
type generation struct {
	routes    *dispatch.Route
	pipeline  notify.Stage
	inhibitor *inhibit.Inhibitor
	tmpl      *template.Template
}

type metrics struct {
	templateErrors  *prometheus.CounterVec
	stateSaveErrors *prometheus.CounterVec
	invalidAlerts   prometheus.Counter
	leftToLeader    prometheus.Counter
	reloadSuccess   prometheus.Gauge
	reloadTime      prometheus.Gauge
	requestDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		templateErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_template_errors_total",
			Help: "Notifications whose templates failed to render and were sent in the fallback form, per receiver and integration.",
		}, []string{"receiver", "integration"}),
		stateSaveErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alertmanager_state_save_errors_total",
			Help: "Failed saves of silences or the notification log to the state store.",
		}, []string{"state"}),
		invalidAlerts: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alertmanager_alerts_invalid_total",
			Help: "Alerts from the rules manager rejected as invalid.",
		}),
		leftToLeader: f.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alertmanager_flushes_left_to_leader_total",
			Help: "Alert group flushes a clustered node skipped because another node leads and notifies.",
		}),
		reloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alertmanager_config_last_reload_successful",
			Help: "Whether the last alertmanager.yml (re)load succeeded.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alertmanager_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful alertmanager.yml (re)load.",
		}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alertmanager_http_request_duration_seconds",
			Help:    "Histogram of latencies for HTTP requests.",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler", "method", "code"}),
	}
}

// flags turns on receiver names in Alertmanager's notification metrics, so
// alertmanager_notifications_failed_total counts failures per receiver.
type flags struct{ featurecontrol.NoopFlags }

func (flags) EnableReceiverNamesInMetrics() bool { return true }

// New loads the config and the saved state and builds the Alertmanager.
func New(opts Options) (*Alertmanager, error) {
	if opts.ConfigFile == "" {
		return nil, errors.New("alerting: no alertmanager config file")
	}
	if opts.ExternalURL == nil {
		panic(ErrNoExternalURL)
	}
	if opts.Retention <= 0 {
		opts.Retention = 120 * time.Hour
	}
	if opts.MaintenanceInterval <= 0 {
		opts.MaintenanceInterval = 15 * time.Minute
	}
	if opts.AlertGCInterval <= 0 {
		opts.AlertGCInterval = 30 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	am := &Alertmanager{
		opts:        opts,
		logger:      opts.Logger,
		state:       opts.State,
		groupMarker: marker.NewGroupMarker(),
		recorder:    eventrecorder.NopRecorder(),
		deliveries:  newDeliveryLog(time.Now),
		outbound:    newOutboundPolicy(opts.AllowOutbound),
		nflogDirty:  make(chan struct{}, 1),
		stopc:       make(chan struct{}),
		done:        make(chan struct{}),
	}
	if opts.Fencer != nil {
		am.outbound.fence = NewLeaderFence(opts.Fencer)
	}
	if am.state == nil {
		fs, err := NewFileStore(opts.DataDir)
		if err != nil {
			return nil, err
		}
		am.state = fs
	}
	am.externalURL = externalURL(opts.ExternalURL)

	conf, err := config.LoadFile(opts.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", opts.ConfigFile, err)
	}

	reg := opts.Registerer
	am.metrics = newMetrics(reg)
	ff := flags{}

	if r := opts.Replication; r != nil {
		am.silences, am.nflog = r.state.silences, r.state.nflog
	} else if err := am.loadState(); err != nil {
		return nil, err
	}
	am.silencer = silence.NewSilencer(am.silences, am.logger, am.recorder)

	// The alert store's GC runs until Stop; it is not tied to a request.
	am.alerts, err = mem.NewAlerts(context.Background(), opts.AlertGCInterval, 0, am.silencer, am.logger, am.recorder, reg, ff)
	if err != nil {
		return nil, fmt.Errorf("alerting: alert store: %w", err)
	}

	am.api, err = api.New(api.Options{
		Alerts:          am.alerts,
		Silences:        am.silences,
		GroupMutedFunc:  am.groupMarker.Muted,
		Logger:          am.logger.With("component", "api"),
		Registry:        reg,
		RequestDuration: am.metrics.requestDuration,
		GroupFunc:       am.groups,
	})
	if err != nil {
		am.alerts.Close()
		return nil, fmt.Errorf("alerting: api: %w", err)
	}
	am.handler = am.persistSilenceChanges(am.api.Register(route.New(), "/"))
	if opts.Replication != nil {
		am.handler = opts.Replication.Handler(am.handler)
	}

	am.pipelines = notify.NewPipelineBuilder(reg, ff, am.recorder)
	am.dispMetrics = dispatch.NewDispatcherMetrics(false, reg, ff)

	if err := am.applyConfig(conf); err != nil {
		am.alerts.Close()
		return nil, err
	}
	return am, nil
}

// ErrNoExternalURL is what New panics with, and CheckTemplates returns,
// without an external URL: every link the Alertmanager hands out would be
// wrong without it.
var ErrNoExternalURL = errors.New("alerting: Options.ExternalURL is required")

// externalURL is u without a trailing slash, so that links appended to it
// do not start with two.
func externalURL(u *url.URL) *url.URL {
	c := *u
	c.Path = strings.TrimRight(c.Path, "/")
	return &c
}

// loadState builds the silences and the notification log from the state
// store.
func (am *Alertmanager) loadState() error {
	nflogSnap, err := am.load(stateNflog)
	if err != nil {
		return err
	}
	silencesSnap, err := am.load(stateSilences)
	if err != nil {
		return err
	}
	am.nflog, am.silences, err = openState(nflogSnap, silencesSnap, am.opts.Retention, am.logger, am.opts.Registerer, am.recorder)
	return err
}

// openState builds a notification log and silences, each from its
// snapshot (nil: empty).
func openState(nflogSnap, silencesSnap io.Reader, retention time.Duration, logger *slog.Logger, reg prometheus.Registerer, rec eventrecorder.Recorder) (*nflog.Log, *silence.Silences, error) {
	nl, err := nflog.New(nflog.Options{
		SnapshotReader: nflogSnap,
		Retention:      retention,
		Logger:         logger.With("component", "nflog"),
		Metrics:        reg,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("alerting: notification log: %w", err)
	}
	sil, err := silence.New(silence.Options{
		SnapshotReader: silencesSnap,
		Retention:      retention,
		Logger:         logger.With("component", "silences"),
		Metrics:        reg,
		EventRecorder:  rec,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("alerting: silences: %w", err)
	}
	return nl, sil, nil
}

// load opens a saved state blob, or returns nil if there is none yet.
func (am *Alertmanager) load(name string) (io.Reader, error) {
	r, err := am.state.Load(name)
	if errors.Is(err, ErrStateNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", name, err)
	}
	defer r.Close()
	// Read it whole so the store's reader is closed before New returns.
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", name, err)
	}
	return strings.NewReader(string(b)), nil
}

// ValidateConfig checks an alertmanager.yml as ApplyConfig would load it,
// so a reload can check every part of a configuration before applying any.
func ValidateConfig(path string) error {
	if _, err := config.LoadFile(path); err != nil {
		return fmt.Errorf("alerting: load %s: %w", path, err)
	}
	return nil
}

// ApplyConfig reloads alertmanager.yml from path (the Options' ConfigFile if
// empty). On error the running configuration stays in place.
func (am *Alertmanager) ApplyConfig(path string) error {
	if path == "" {
		path = am.opts.ConfigFile
	}
	conf, err := config.LoadFile(path)
	if err != nil {
		am.metrics.reloadSuccess.Set(0)
		return fmt.Errorf("alerting: load %s: %w", path, err)
	}
	return am.applyConfig(conf)
}

// applyConfig builds the routing tree, receivers and pipeline for conf and,
// if running, swaps them in; everything fallible happens before the swap.
func (am *Alertmanager) applyConfig(conf *config.Config) (err error) {
	defer func() {
		if err != nil {
			am.metrics.reloadSuccess.Set(0)
			return
		}
		am.metrics.reloadSuccess.Set(1)
		am.metrics.reloadTime.SetToCurrentTime()
	}()

	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return fmt.Errorf("alerting: templates: %w", err)
	}
	tmpl.ExternalURL = am.externalURL

	routes := dispatch.NewRoute(conf.Route, nil)
	used := map[string]bool{}
	routes.Walk(func(r *dispatch.Route) { used[r.RouteOpts.Receiver] = true })

	receivers := make(map[string][]notify.Integration, len(used))
	for i := range conf.Receivers {
		rcv := &conf.Receivers[i]
		if !used[rcv.Name] {
			continue
		}
		integrations, err := am.outbound.buildIntegrations(*rcv, tmpl, am.logger)
		if err != nil {
			return fmt.Errorf("alerting: receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = withTemplateFallback(rcv, integrations, am.outbound.buildIntegrations, tmpl, am.logger, am.metrics.templateErrors, am.deliveries)
	}

	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}

	inhibitor := inhibit.NewInhibitor(am.alerts, conf.InhibitRules, am.logger, am.recorder)
	var pipeline notify.Stage = am.pipelines.New(
		receivers,
		func() time.Duration { return 0 }, // no cluster peers to wait for
		inhibitor,
		am.silencer,
		timeinterval.NewIntervener(intervals),
		am.groupMarker,
		nflogSaver{am.nflog, am.nflogDirty},
		nil,
	)
	if am.opts.Fencer != nil {
		pipeline = &leaderGate{next: pipeline, leader: am.opts.Fencer, skipped: am.metrics.leftToLeader}
	}
	gen := &generation{routes: routes, pipeline: pipeline, inhibitor: inhibitor, tmpl: tmpl}

	am.applyMtx.Lock()
	defer am.applyMtx.Unlock()
	am.mtx.Lock()
	if am.stopped {
		am.mtx.Unlock()
		return errors.New("alerting: ApplyConfig after Stop")
	}
	am.conf = conf
	am.gen = gen
	if am.running {
		am.startLocked()
	}
	am.mtx.Unlock()
	am.api.Update(conf, am.setAlertStatus)
	am.deliveries.retain(receivers)
	return nil
}

// setAlertStatus marks an alert's inhibited/silenced state for the API.
func (am *Alertmanager) setAlertStatus(ctx context.Context, lset model.LabelSet) {
	if inh := am.inhibitor.Load(); inh != nil {
		inh.Mutes(ctx, lset)
	}
	am.silencer.Mutes(ctx, lset)
}

// startLocked stops the running dispatcher and inhibitor, if any, and starts
// the current generation's. Called with mtx held.
func (am *Alertmanager) startLocked() {
	if old := am.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := am.dispatcher.Load(); old != nil {
		old.Stop()
	}
	g := am.gen
	// Load the inhibitor before the dispatcher so that nothing is sent that
	// an already-firing alert inhibits.
	go g.inhibitor.Run()
	g.inhibitor.WaitForLoading()
	am.inhibitor.Store(g.inhibitor)

	d := dispatch.NewDispatcher(am.alerts, g.routes, g.pipeline, am.groupMarker, notifyTimeout,
		30*time.Second, nil, am.logger, am.recorder, am.dispMetrics, g.tmpl)
	go d.Run(time.Now())
	d.WaitForLoading()
	am.dispatcher.Store(d)
}

func notifyTimeout(d time.Duration) time.Duration {
	return max(d, notify.MinTimeout)
}

// groups serves the API's /alerts/groups from the running dispatcher.
func (am *Alertmanager) groups(ctx context.Context, routeFilter func(*dispatch.Route) bool, alertFilter func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
	d := am.dispatcher.Load()
	if d == nil {
		return dispatch.AlertGroups{}, map[model.Fingerprint][]string{}, nil
	}
	return d.Groups(ctx, routeFilter, alertFilter)
}

// Run dispatches alerts and runs maintenance until ctx is done or Stop is
// called, then stops dispatching and saves the state. It returns after the
// teardown; it may be called once.
func (am *Alertmanager) Run(ctx context.Context) error {
	am.mtx.Lock()
	if am.running || am.stopped {
		am.mtx.Unlock()
		return errors.New("alerting: Run called twice or after Stop")
	}
	am.running = true
	am.startLocked()
	am.mtx.Unlock()

	var wg sync.WaitGroup
	maint := make(chan struct{})
	wg.Go(func() {
		am.silences.Maintenance(am.opts.MaintenanceInterval, stateSilences, maint, func() (int64, error) {
			if _, err := am.silences.GC(); err != nil {
				return 0, err
			}
			return am.saveSilences()
		})
	})
	wg.Go(func() {
		am.nflog.Maintenance(am.opts.MaintenanceInterval, stateNflog, maint, func() (int64, error) {
			if _, err := am.nflog.GC(); err != nil {
				return 0, err
			}
			return am.saveNflog()
		})
	})
	wg.Go(func() { am.nflogSaveLoop(maint) })
	replCtx, stopRepl := context.WithCancel(context.Background())
	if r := am.opts.Replication; r != nil {
		wg.Go(func() { r.Run(replCtx) })
	}

	select {
	case <-ctx.Done():
	case <-am.stopc:
	}

	// Stop sending first, then take the final snapshots.
	am.mtx.Lock()
	am.stopped = true
	if inh := am.inhibitor.Load(); inh != nil {
		inh.Stop()
	}
	if d := am.dispatcher.Load(); d != nil {
		d.Stop()
	}
	am.mtx.Unlock()
	stopRepl()
	close(maint)
	wg.Wait()
	am.alerts.Close()
	close(am.done)
	return nil
}

// Stop ends Run and waits for its teardown. Without a running Run it only
// releases the alert store. It may be called more than once.
func (am *Alertmanager) Stop() {
	am.stopOnce.Do(func() {
		close(am.stopc)
		am.mtx.Lock()
		running := am.running
		am.stopped = true
		am.mtx.Unlock()
		if !running {
			am.alerts.Close()
			close(am.done)
		}
	})
	<-am.done
}

// Handler serves the Alertmanager v2 API under /api/v2/ (alerts, alert
// groups, silences, status, receivers), as Alertmanager does; mount it at
// "/api/v2/". Silence changes are saved before the response is written.
func (am *Alertmanager) Handler() http.Handler {
	return am.handler
}

// Send puts alerts into the store for routing, the way Alertmanager's
// POST /api/v2/alerts does. It has the signature of Prometheus's
// notifier.Manager.Send, so it is a rules.Sender: rules.SendAlerts(am, url)
// is a rules.NotifyFunc (Notify is that, with ExternalURL).
func (am *Alertmanager) Send(alerts ...*notifier.Alert) {
	now := time.Now()
	am.mtx.Lock()
	resolveTimeout := time.Duration(am.conf.Global.ResolveTimeout)
	am.mtx.Unlock()

	valid := make([]*alert.Alert, 0, len(alerts))
	for _, a := range alerts {
		ta := &alert.Alert{
			Alert: model.Alert{
				Labels:       labelSet(a.Labels, am.opts.ExternalLabels),
				Annotations:  labelSet(a.Annotations, labels.EmptyLabels()),
				StartsAt:     a.StartsAt,
				EndsAt:       a.EndsAt,
				GeneratorURL: a.GeneratorURL,
			},
			UpdatedAt: now,
		}
		if ta.StartsAt.IsZero() {
			if ta.EndsAt.IsZero() {
				ta.StartsAt = now
			} else {
				ta.StartsAt = ta.EndsAt
			}
		}
		if ta.EndsAt.IsZero() {
			ta.Timeout = true
			ta.EndsAt = now.Add(resolveTimeout)
		}
		if err := ta.Validate(); err != nil {
			am.metrics.invalidAlerts.Inc()
			am.logger.Warn("dropping invalid alert", "alert", ta.Labels.String(), "err", err)
			continue
		}
		valid = append(valid, ta)
	}
	if len(valid) == 0 {
		return
	}
	if err := am.alerts.Put(context.Background(), valid...); err != nil {
		am.logger.Error("storing alerts", "err", err)
	}
}

// Notify is a rules.NotifyFunc: it converts the rules manager's alerts as
// Prometheus does for an Alertmanager (rules.SendAlerts) and Sends them,
// but with generator URLs that open the expression in vigil's UI:
// Prometheus's point at its own /graph page, which vigil does not have.
func (am *Alertmanager) Notify(_ context.Context, expr string, alerts ...*rules.Alert) {
	if len(alerts) == 0 {
		return
	}
	generator := GeneratorURL(am.externalURL, expr)
	out := make([]*notifier.Alert, 0, len(alerts))
	for _, a := range alerts {
		na := &notifier.Alert{StartsAt: a.FiredAt, Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: generator}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt = a.ResolvedAt
		} else {
			na.EndsAt = a.ValidUntil
		}
		out = append(out, na)
	}
	am.Send(out...)
}

// GeneratorURL is the link of an alert of expr: the page of vigil's UI at
// ext that runs a query (the metrics explorer).
func GeneratorURL(ext *url.URL, expr string) string {
	return externalURL(ext).String() + ui.ExploreLink(expr)
}

var _ rules.NotifyFunc = (*Alertmanager)(nil).Notify

// labelSet converts Prometheus labels to Alertmanager's, adding ext for
// names not set and dropping empty values, as the notifier and the API do.
func labelSet(ls, ext labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len()+ext.Len())
	ls.Range(func(l labels.Label) {
		if l.Value != "" {
			out[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		}
	})
	ext.Range(func(l labels.Label) {
		if _, ok := out[model.LabelName(l.Name)]; !ok && l.Value != "" {
			out[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		}
	})
	return out
}
