package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// LeaderTermHeader carries the fencing token on every webhook notification
// a clustered vigil sends: a receiver that has seen term N can drop what
// arrives with less than N, from a leader deposed without knowing it.
const LeaderTermHeader = "X-Vigil-Leader-Term"

// ErrStaleToken: Fence returned a token lower than one this node already
// used, so another node has led since; sending with it would undo the
// fencing the receiver relies on.
var ErrStaleToken = errors.New("alerting: fencing token older than one already used")

// ClusterLeader is what a clustered Alertmanager uses of the consensus
// node: Fence before each notification, and Leader to leave groups to the
// leader without trying them.
type ClusterLeader interface {
	consensus.Fencer
	Leader() consensus.LeaderInfo
}

// leaderGate ends the pipeline quietly, before the receivers, while this
// node does not know itself the leader. Without it a follower holding firing
// alerts (a deposed leader's until they time out, or alerts posted to it
// directly) would try each group at every flush and log each refusal by
// the fence as a failed notification, for as long as the alerts last. The
// gate only saves that work: Leader can be stale, so the fence, with its
// network round trip, stays the check that keeps a deposed node silent.
type leaderGate struct {
	next    notify.Stage
	leader  ClusterLeader
	skipped prometheus.Counter
}

func (g *leaderGate) Exec(ctx context.Context, l *slog.Logger, alerts ...*alert.Alert) (context.Context, []*alert.Alert, error) {
	if !g.leader.Leader().Self {
		g.skipped.Inc()
		// No alerts and no error: the dispatcher counts the flush done,
		// and nothing is written to the notification log.
		return ctx, nil, nil
	}
	return g.next.Exec(ctx, l, alerts...)
}

// LeaderFence is the check before each notification: the token from
// consensus.Fencer, never lower than one already handed out. Safe for
// concurrent use.
type LeaderFence struct {
	fencer  consensus.Fencer
	highest atomic.Uint64
}

// NewLeaderFence returns a LeaderFence over f.
func NewLeaderFence(f consensus.Fencer) *LeaderFence {
	return &LeaderFence{fencer: f}
}

// Token returns the token to send with, or an error matching
// consensus.ErrNotLeader (this node does not lead) or ErrStaleToken.
func (f *LeaderFence) Token(ctx context.Context) (uint64, error) {
	tok, err := f.fencer.Fence(ctx)
	if err != nil {
		return 0, err
	}
	for {
		cur := f.highest.Load()
		if tok < cur {
			return 0, fmt.Errorf("%w: %d after %d", ErrStaleToken, tok, cur)
		}
		if tok == cur || f.highest.CompareAndSwap(cur, tok) {
			return tok, nil
		}
	}
}

type fenceTokenKey struct{}

// withFenceToken hands the token a notification was fenced with down to
// its HTTP requests, so all of one notification's requests carry the token
// that was checked for it.
func withFenceToken(ctx context.Context, tok uint64) context.Context {
	return context.WithValue(ctx, fenceTokenKey{}, tok)
}

// FencedTransport adds LeaderTermHeader to each request and refuses to send
// one when this node cannot fence: the token comes from the request's
// context when a fenced notification set it, otherwise from Fence.
type FencedTransport struct {
	Next  http.RoundTripper
	Fence *LeaderFence
}

// RoundTrip implements http.RoundTripper.
func (t *FencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, ok := req.Context().Value(fenceTokenKey{}).(uint64)
	if !ok {
		var err error
		if tok, err = t.Fence.Token(req.Context()); err != nil {
			if req.Body != nil {
				_ = req.Body.Close() // RoundTrip must close it, even on error
			}
			return nil, fmt.Errorf("alerting: notification not sent: %w", err)
		}
	}
	req = req.Clone(req.Context())
	req.Header.Set(LeaderTermHeader, strconv.FormatUint(tok, 10))
	return t.Next.RoundTrip(req)
}

// fenceGuard runs an integration only while Fence succeeds, with the token
// in the context for FencedTransport.
type fenceGuard struct {
	next  notify.Integration
	fence *LeaderFence
}

func (g *fenceGuard) Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	tok, err := g.fence.Token(ctx)
	if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, ErrStaleToken) {
		// Not retried: the leader sends it, with the replicated
		// notification log to go by.
		return false, fmt.Errorf("not sent by a node that does not lead: %w", err)
	}
	if err != nil {
		return true, err
	}
	return g.next.Notify(withFenceToken(ctx, tok), alerts...)
}

// fenceIntegrations guards every integration of a receiver and replaces
// its webhooks with ones whose requests carry the token. Alertmanager's
// notifiers build their HTTP clients themselves and take no RoundTripper,
// so a webhook is the one integration vigil sends itself; a webhook with a
// custom payload keeps Alertmanager's notifier (guarded, without the
// header).
func (p *outboundPolicy) fenceIntegrations(rcv config.Receiver, integrations []notify.Integration, tmpl *template.Template, logger *slog.Logger) ([]notify.Integration, error) {
	for i, in := range integrations {
		if in.Name() == "webhook" && in.Index() < len(rcv.WebhookConfigs) && rcv.WebhookConfigs[in.Index()].Payload == nil {
			wh, err := newFencedWebhook(rcv.WebhookConfigs[in.Index()], tmpl, logger, p.fence, p.httpOptions()...)
			if err != nil {
				return nil, err
			}
			in = notify.NewIntegration(wh, rcv.WebhookConfigs[in.Index()], in.Name(), in.Index(), rcv.Name)
		}
		g := &fenceGuard{next: in, fence: p.fence}
		integrations[i] = notify.NewIntegration(g, &g.next, in.Name(), in.Index(), rcv.Name)
	}
	return integrations, nil
}

// fencedWebhook is Alertmanager's webhook notifier (same payload, URL
// templating, timeout and retry rules) over a FencedTransport.
type fencedWebhook struct {
	conf    *webhook.WebhookConfig
	tmpl    *template.Template
	logger  *slog.Logger
	client  *http.Client
	retrier *notify.Retrier
}

func newFencedWebhook(conf *webhook.WebhookConfig, tmpl *template.Template, logger *slog.Logger, fence *LeaderFence, opts ...commoncfg.HTTPClientOption) (*fencedWebhook, error) {
	client, err := notify.NewClientWithTracing(*conf.HTTPConfig, "webhook", opts...)
	if err != nil {
		return nil, err
	}
	client.Transport = &FencedTransport{Next: client.Transport, Fence: fence}
	return &fencedWebhook{conf: conf, tmpl: tmpl, logger: logger, client: client, retrier: &notify.Retrier{}}, nil
}

func (n *fencedWebhook) Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	var truncated uint64
	if m := n.conf.MaxAlerts; m != 0 && uint64(len(alerts)) > m {
		alerts, truncated = alerts[:m], uint64(len(alerts))-m
	}
	data := notify.GetTemplateData(ctx, n.tmpl, alerts, n.logger)
	groupKey, err := notify.ExtractGroupKey(ctx)
	if err != nil {
		return false, err
	}
	var buf bytes.Buffer
	msg := &webhook.Message{Version: "4", Data: data, GroupKey: groupKey.String(), TruncatedAlerts: truncated}
	if err := json.NewEncoder(&buf).Encode(msg); err != nil {
		return false, err
	}

	var tmplErr error
	tmpl := notify.TmplText(n.tmpl, data, &tmplErr)
	var url string
	if n.conf.URL != "" {
		url = tmpl(string(n.conf.URL))
	} else {
		content, err := os.ReadFile(n.conf.URLFile)
		if err != nil {
			return false, fmt.Errorf("read url_file: %w", err)
		}
		url = tmpl(strings.TrimSpace(string(content)))
	}
	if tmplErr != nil {
		return false, fmt.Errorf("failed to template webhook URL: %w", tmplErr)
	}
	if url == "" {
		return false, errors.New("webhook URL is empty after templating")
	}
	if n.conf.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, n.conf.Timeout, fmt.Errorf("configured webhook timeout reached (%s)", n.conf.Timeout))
		defer cancel()
	}
	resp, err := notify.PostJSON(ctx, n.client, url, &buf)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return true, notify.RedactURL(err)
	}
	defer notify.Drain(resp)
	retry, err := n.retrier.Check(resp.StatusCode, resp.Body)
	if err != nil {
		return retry, notify.NewErrorWithReason(notify.GetFailureReasonFromStatusCode(resp.StatusCode), err)
	}
	return retry, nil
}
