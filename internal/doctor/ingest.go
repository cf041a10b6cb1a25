package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/selfobs"
)

// RejectionSources tells who sent the items rejected for a reason;
// *selfobs.RejectionSources satisfies it.
type RejectionSources interface {
	Recent(signal, reason string) []selfobs.RejectionSource
}

var _ RejectionSources = (*selfobs.RejectionSources)(nil)

// IngestCheck finds data vigil's limits rejected or altered
// (ingest_rejections), by signal and reason, with the sources that sent
// it: the sender sees at most a partial-success message it usually does
// not log, so the loss is otherwise silent.
//
// It reads vigil_rejected_total and vigil_received_total from the
// Gatherer and remembers them between runs to compute their increase over
// the window, so use one value (a pointer) for the life of the server.
type IngestCheck struct {
	Gatherer prometheus.Gatherer
	// Sources, when set, names who sent the rejected items.
	Sources RejectionSources
	// Window is the time over which increases are computed (15m if 0).
	Window time.Duration
	// CriticalShare is the share of a signal's received items dropped for
	// one reason above which the finding is critical (0.1 if 0).
	CriticalShare float64
	Now           func() time.Time

	mu      sync.Mutex
	history []ingestPoint // oldest first
}

// ingestPoint is the counters' values at one run.
type ingestPoint struct {
	at       time.Time
	rejected map[signalReason]float64
	received map[string]float64
}

type signalReason struct{ signal, reason string }

// Name implements Check.
func (c *IngestCheck) Name() string { return "ingest" }

// NodeLocal implements NodeLocal: it judges what this node received.
func (c *IngestCheck) NodeLocal() bool { return true }

// Run implements Check.
func (c *IngestCheck) Run(context.Context) ([]Finding, error) {
	window := cmp.Or(c.Window, 15*time.Minute)
	now := clockOf(c.Now)()
	mfs, err := c.Gatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("doctor: gather vigil's metrics: %w", err)
	}
	cur := ingestPoint{at: now, rejected: map[signalReason]float64{}, received: map[string]float64{}}
	var started time.Time
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vigil_rejected_total", "vigil_received_total":
			for _, m := range mf.GetMetric() {
				var k signalReason
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "signal":
						k.signal = l.GetValue()
					case "reason":
						k.reason = l.GetValue()
					}
				}
				if mf.GetName() == "vigil_received_total" {
					cur.received[k.signal] = m.GetCounter().GetValue()
				} else {
					cur.rejected[k] = m.GetCounter().GetValue()
				}
			}
		case "process_start_time_seconds":
			if ms := mf.GetMetric(); len(ms) == 1 {
				started = time.Unix(0, int64(ms[0].GetGauge().GetValue()*1e9))
			}
		}
	}
	base, ok := c.remember(cur, window, started)
	if !ok {
		return nil, nil
	}
	span := now.Sub(base.at).Round(time.Second)
	criticalShare := cmp.Or(c.CriticalShare, 0.1)
	var out []Finding
	for _, k := range slices.SortedFunc(maps.Keys(cur.rejected), func(a, b signalReason) int {
		return cmp.Or(cmp.Compare(a.signal, b.signal), cmp.Compare(a.reason, b.reason))
	}) {
		n := increase(base.rejected[k], cur.rejected[k])
		if n < 1 {
			continue
		}
		received := increase(base.received[k.signal], cur.received[k.signal])
		out = append(out, rejectionFinding(k, n, received, criticalShare, span, c.sources(k, base.at)))
	}
	return out, nil
}

// remember adds cur to the history and returns the point to compare it
// with: the newest one at least a window old, else the oldest. Before a
// second run there is none, unless vigil started within the window, when
// every counter was zero at its start.
func (c *IngestCheck) remember(cur ingestPoint, window time.Duration, started time.Time) (ingestPoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cutoff := cur.at.Add(-window)
	keep := 0
	for i, p := range c.history {
		if !p.at.After(cutoff) {
			keep = i
		}
	}
	c.history = append(c.history[keep:], cur)
	if len(c.history) > 1 {
		return c.history[0], true
	}
	if !started.IsZero() && started.After(cutoff) && started.Before(cur.at) {
		return ingestPoint{at: started}, true
	}
	return ingestPoint{}, false
}

// sources returns who sent the rejected items since the base point, most
// recent first.
func (c *IngestCheck) sources(k signalReason, since time.Time) []selfobs.RejectionSource {
	if c.Sources == nil {
		return nil
	}
	var out []selfobs.RejectionSource
	for _, s := range c.Sources.Recent(k.signal, k.reason) {
		if !s.Last.Before(since) && len(out) < MaxSamples {
			out = append(out, s)
		}
	}
	return out
}

// increase of a counter from a to b, counting a restart (b < a) as from 0.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}

// itemsOf names n items of a signal.
func itemsOf(signal string, n float64) string {
	one, many := "item", "items"
	switch signal {
	case "traces":
		one, many = "span", "spans"
	case "logs":
		one, many = "log record", "log records"
	case "metrics":
		one, many = "sample", "samples"
	}
	if n == 1 {
		return one
	}
	return many
}

// reasonKind says what happened to the items counted under a reason.
type reasonKind int

const (
	dropped  reasonKind = iota // items dropped
	altered                    // items kept, changed
	requests                   // whole requests refused; counts requests, or items for overloaded
)

// reasonHelp is the probable cause of, and the fix for, each rejection
// reason of internal/ingest/limits, naming the vigil.yaml key involved.
var reasonHelp = map[string]struct {
	kind       reasonKind
	cause, fix string
}{
	"invalid_trace_id": {dropped,
		"the sender builds trace ids that are not 16 bytes or are all zeros, so the items cannot be joined to a trace",
		"fix the code that makes or encodes the ids: 16 random bytes, hex-encoded in OTLP/JSON (not base64); typically a custom id generator or a hand-written exporter"},
	"invalid_span_id": {dropped,
		"the sender builds span ids that are not 8 bytes or are all zeros",
		"fix the code that makes or encodes the ids: 8 random bytes, hex-encoded in OTLP/JSON (not base64); typically a custom id generator or a hand-written exporter"},
	"timestamp_too_old": {dropped,
		"the items are older than vigil keeps data (retention): the sender's clock runs far behind, or it replays a backlog long after the fact",
		"sync the sending host's clock (NTP, chrony); if old data is meant to be loaded, raise retention in vigil.yaml above its age"},
	"timestamp_in_future": {dropped,
		"the sender's clock runs ahead of vigil's by more than limits.max_future_skew (for metric samples, by more than 10m)",
		"sync the sending host's clock (NTP, chrony); raise limits.max_future_skew in vigil.yaml only for a known, harmless skew"},
	"end_before_start": {dropped,
		"spans end before they start: the instrumentation sets explicit timestamps from different clocks, or a converter swaps them",
		"fix the code that passes explicit start or end timestamps to spans (span.End(trace.WithTimestamp(...))), or the converter that produces them"},
	"invalid_utf8": {altered,
		"strings that are not valid UTF-8 arrived and were repaired (invalid bytes replaced)",
		"send text as UTF-8 and binary data as bytes attributes; check how the client encodes log bodies and attribute values"},
	"value_truncated": {altered,
		"attribute values or log bodies longer than limits.max_attribute_value_length were truncated",
		"keep long payloads (request bodies, SQL, stack traces) out of attributes or cap them at the client (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT), or raise limits.max_attribute_value_length in vigil.yaml"},
	"too_many_attributes": {altered,
		"items carried more than limits.max_attributes_per_item attributes; the extra attributes were dropped (counted one by one)",
		"send fewer attributes (OTEL_ATTRIBUTE_COUNT_LIMIT at the client), or raise limits.max_attributes_per_item in vigil.yaml"},
	"too_many_labels": {dropped,
		"series with more labels than limits.max_labels_per_series were rejected, or Loki streams (or entries' structured metadata) with more than limits.max_labels_per_stream",
		"drop labels before sending (metric_relabel_configs with action: labeldrop; for OTLP, fewer resource attributes promoted to labels; for Loki agents, stage.label_drop in Alloy or labeldrop in Promtail), or raise limits.max_labels_per_series (limits.max_labels_per_stream) in vigil.yaml"},
	"label_name_too_long": {dropped,
		"series with a label name longer than limits.max_label_name_length were rejected",
		"shorten the label names at the sender, or raise limits.max_label_name_length in vigil.yaml"},
	"label_value_too_long": {dropped,
		"series with a label value longer than limits.max_label_value_length were rejected: usually a URL, a query or an error message put in a label",
		"keep long text out of labels (it belongs in logs or span attributes), or raise limits.max_label_value_length in vigil.yaml"},
	"invalid_label": {dropped,
		"series without a metric name, with an empty or repeated label name, or with text that is not UTF-8 were rejected; or Loki streams whose labels do not parse as {name=\"value\", ...} or are all empty",
		"fix the sender's relabeling or exporter that produces them (a rule that empties __name__, labels duplicated after relabeling); for a Loki agent, give every stream at least one non-empty label with a valid name ([a-zA-Z_][a-zA-Z0-9_]*)"},
	"out_of_order": {dropped,
		"samples arrived more than 10 minutes behind the newest sample of their series: two senders write the same series (replicas without a label telling them apart), or a sender's queue lags by more than 10 minutes",
		"give every sender a distinct label (external_labels: {replica: ...} in Prometheus, a distinct instance or service.instance.id for OTLP), and keep remote_write queues from falling more than 10 minutes behind"},
	"series_limit": {dropped,
		"samples of new series were refused because the TSDB head holds limits.max_series series: a sender creates series without bound (an id, a timestamp or a URL in a label)",
		"find the label that grows (the cardinality_risk findings, /api/v1/status/tsdb) and drop it at the sender; raise limits.max_series in vigil.yaml only if the growth is expected and memory allows"},
	"unsupported": {dropped,
		"items asked for something vigil does not do with logs, such as an Elasticsearch bulk update or delete, or a bulk action without an index",
		"configure the shipper to index (append) documents, which is what log agents do by default; name the index in the action or the path (/{index}/_bulk)"},
	"item_too_large": {dropped,
		"single documents were larger than vigil decodes one by one (an Elasticsearch bulk document above 1 MiB), while the rest of their request was kept",
		"cap the size of a log line at the shipper (a multiline rule that joins too much, or a whole file sent as one event), or split it"},
	"line_too_long": {dropped,
		"log lines pushed through the Loki API were longer than limits.max_line_bytes (256KiB unless set) and were refused, while the rest of their request was kept: usually a multiline rule that joins too much, or a whole file or payload logged as one line",
		"cap lines at the agent (a tighter max_lines in a multiline stage; Promtail: limits_config.max_line_size with max_line_size_truncate), or raise limits.max_line_bytes in vigil.yaml; lines above limits.max_attribute_value_length are kept truncated"},
	"malformed_stream": {dropped,
		"streams or entries of a Loki push did not decode (a truncated protobuf stream, a JSON entry that is not [\"<unix ns>\", \"<line>\"] or [..., {metadata}], a timestamp that is not a number of nanoseconds) and were refused, while the rest of their request was kept",
		"check the client that builds the push: JSON values are [string nanoseconds, string line, optional object of string metadata], as Loki's API documents; an agent's own Loki output writes them right"},
	"too_many_entries": {dropped,
		"Loki pushes carried more entries than vigil decodes from one request (250,000); the entries past it were refused",
		"send smaller batches (Alloy loki.write batch_size, Promtail client batchsize, a smaller batching interval in the Node and Python clients)"},
	"stream_limit": {dropped,
		"lines of new Loki streams were refused because their service or tenant already had limits.max_streams_per_service or max_streams_per_tenant active streams: usually a label whose value changes per request (an id, a trace id) put in the stream labels",
		"see the log_stream_cardinality finding, which names the label: move it to structured metadata or drop it in the agent; raise limits.max_streams_per_service or max_streams_per_tenant in vigil.yaml only if the sources are really that many"},
	"undecodable": {requests,
		"request bodies were not valid OTLP, remote_write, Elasticsearch bulk or Loki push for their Content-Type: typically OTLP/gRPC sent to the HTTP port (or the reverse), JSON sent as protobuf, or an unsupported compression",
		"check the sender's endpoint and protocol: OTLP/gRPC to vigil's otlp_grpc_addr (4317), OTLP/HTTP (http/protobuf or http/json) to otlp_http_addr (4318) at /v1/traces, /v1/logs or /v1/metrics, remote_write to /api/v1/write with snappy, Loki pushes to /loki/api/v1/push on http_addr as snappy protobuf or JSON"},
	"request_too_large": {requests,
		"request bodies were larger than limits.max_request_bytes once decompressed, or would decode to more memory than vigil decodes at once (its decode budget, a share of limits.memory_limit; a body of many empty entries decodes to 70 times its size)",
		"send smaller batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, the collector's batch processor send_batch_max_size, remote_write queue_config.max_samples_per_send), or raise limits.max_request_bytes (or limits.memory_limit) in vigil.yaml"},
	"overloaded": {requests,
		"vigil refused data while busy: more requests at once than ingest.max_requests_in_flight or than its decode budget holds, or a write queue full (ingest.max_queue_items) because storage writes slower than data arrives",
		"senders retry refused data, so the loss is what their retries gave up on; if this persists raise ingest.max_requests_in_flight or ingest.max_queue_items in vigil.yaml, give vigil faster disks or more CPU, or send less"},
}

func rejectionFinding(k signalReason, n, received, criticalShare float64, span time.Duration, sources []selfobs.RejectionSource) Finding {
	help, known := reasonHelp[k.reason]
	if !known {
		help.cause = "vigil's limits rejected these items for " + k.reason
		help.fix = "see vigil_rejected_total{reason=\"" + k.reason + "\"} and the limits section of vigil.yaml"
	}
	items := itemsOf(k.signal, n)
	values := map[string]float64{"rejected": n}
	sev := Warning
	var summary string
	switch help.kind {
	case altered:
		sev = Info
		summary = fmt.Sprintf("%.0f %s %s altered (%s) in the last %s", n, items, were(n), k.reason, span)
		if k.reason == "too_many_attributes" {
			summary = fmt.Sprintf("%.0f attributes of %s %s dropped (%s) in the last %s", n, items, were(n), k.reason, span)
		}
	case requests:
		what := "requests"
		if n == 1 {
			what = "request"
		}
		if k.reason == "overloaded" {
			what = "requests or " + items
		}
		summary = fmt.Sprintf("%.0f %s %s refused (%s) in the last %s", n, what, were(n), k.reason, span)
	default:
		summary = fmt.Sprintf("%.0f %s %s rejected (%s) in the last %s", n, items, were(n), k.reason, span)
		if received > 0 {
			share := n / received
			values["received"], values["share"] = received, share
			summary = fmt.Sprintf("%.0f of %.0f %s received (%.1f%%) %s rejected (%s) in the last %s", n, received, itemsOf(k.signal, received), 100*share, were(n), k.reason, span)
			if share > criticalShare {
				sev = Critical
			}
		}
	}
	var samples []string
	for _, s := range sources {
		samples = append(samples, fmt.Sprintf("%s (%d %s since %s)", s.Source, s.Items, itemsOf(k.signal, float64(s.Items)), s.First.UTC().Format(time.RFC3339)))
	}
	if len(sources) > 0 {
		summary += ", latest from " + sources[0].Source
	}
	return Finding{
		Code: "ingest_rejections", Severity: sev, Subject: k.signal + " " + k.reason,
		Evidence: Evidence{Summary: summary, Values: values, Window: lastWindow(span), Samples: samples},
		Cause:    help.cause,
		Fix:      help.fix,
	}
}

func were(n float64) string {
	if n == 1 {
		return "was"
	}
	return "were"
}
