package doctor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// LogStreams reports the active streams of the Loki push API per tenant
// and service; *limits.StreamTracker satisfies it.
type LogStreams interface {
	Usage(now time.Time) []limits.StreamUsage
}

var _ LogStreams = (*limits.StreamTracker)(nil)

// LogStreamsCheck finds the stream labels log shippers make unbounded
// (log_stream_cardinality): a request id, a trace id or a user put in
// the labels of a Loki stream instead of its line or structured metadata.
// Every value is then a new stream, and once a service or tenant reaches
// limits.max_streams_per_service or max_streams_per_tenant, the lines of
// new streams are refused. The agent only logs the 400 it got, so the
// finding names the label and the agent setting that moves it.
type LogStreamsCheck struct {
	Streams LogStreams
	// NearLimit is the share of a stream limit from which a service or
	// tenant is reported (0.8 if 0).
	NearLimit float64
	// MaxValues is the most distinct values a label may take among a
	// service's active streams before it is reported whatever it holds
	// (100 if 0); a label whose recent values look like ids is reported
	// from MinIDValues (10 if 0), and one named like a per-request value
	// (trace_id, request_id...) too.
	MaxValues, MinIDValues int
	Now                    func() time.Time
}

// Name implements Check.
func (c LogStreamsCheck) Name() string { return "log_streams" }

// NodeLocal implements NodeLocal: each node tracks the streams it received.
func (c LogStreamsCheck) NodeLocal() bool { return true }

// streamSourceLabels name where logs come from: many values of them are
// many sources, expected in a large deployment, so they are reported only
// when a limit is near.
var streamSourceLabels = map[string]bool{
	"pod": true, "k8s_pod_name": true, "instance": true, "host": true, "hostname": true, "host_name": true,
	"node": true, "node_name": true, "container": true, "k8s_container_name": true, "namespace": true,
	"k8s_namespace_name": true, "filename": true, "job": true, "app": true, "service_name": true,
	"service_instance_id": true, "level": true, "detected_level": true, "stream": true,
}

// perRequestLabels are names of values that differ per request or per
// user: as stream labels they are always a mistake.
var perRequestLabels = []string{"trace", "span", "request", "req_id", "correlation", "session", "user", "order_id", "txn", "transaction"}

func perRequestName(name string) bool {
	n := strings.ToLower(name)
	for _, p := range perRequestLabels {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

func (c LogStreamsCheck) near() float64 { return cmp.Or(c.NearLimit, 0.8) }

// unbounded tells whether a label of a service's streams grows with
// requests rather than with sources.
func (c LogStreamsCheck) unbounded(l limits.LabelUsage) bool {
	minIDs := cmp.Or(c.MinIDValues, 10)
	if streamSourceLabels[l.Name] || l.Values < minIDs {
		return false
	}
	if l.Values > cmp.Or(c.MaxValues, 100) || perRequestName(l.Name) {
		return true
	}
	ids := 0
	for _, v := range l.Examples {
		if idLike(v) {
			ids++
		}
	}
	return len(l.Examples) > 0 && 2*ids >= len(l.Examples)
}

// Run implements Check.
func (c LogStreamsCheck) Run(context.Context) ([]Finding, error) {
	usage := c.Streams.Usage(clockOf(c.Now)())
	var out []Finding
	reported := map[string]bool{} // tenants with a finding already
	for _, u := range usage {
		nearService := u.ServiceLimit > 0 && float64(u.Streams) >= c.near()*float64(u.ServiceLimit)
		var label *limits.LabelUsage
		for i := range u.Labels {
			if c.unbounded(u.Labels[i]) {
				label = &u.Labels[i]
				break
			}
		}
		if label == nil && nearService && len(u.Labels) > 0 {
			label = &u.Labels[0]
		}
		if label == nil {
			continue
		}
		reported[u.Tenant] = true
		out = append(out, c.finding(u, *label, nearService, false))
	}
	// A tenant near its limit through many modest services: name the
	// service with the most streams.
	byTenant := map[string]limits.StreamUsage{}
	for _, u := range usage {
		if top, ok := byTenant[u.Tenant]; !ok || u.Streams > top.Streams {
			byTenant[u.Tenant] = u
		}
	}
	for tenant, u := range byTenant {
		if reported[tenant] || u.TenantLimit == 0 || float64(u.TenantStreams) < c.near()*float64(u.TenantLimit) || len(u.Labels) == 0 {
			continue
		}
		out = append(out, c.finding(u, u.Labels[0], false, true))
	}
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.Subject, b.Subject) })
	return out, nil
}

func (c LogStreamsCheck) finding(u limits.StreamUsage, l limits.LabelUsage, nearService, tenantWide bool) Finding {
	subject := u.Service
	if u.Tenant != "fake" {
		subject += " (tenant " + u.Tenant + ")"
	}
	values := map[string]float64{"streams": float64(u.Streams), "label_values": float64(l.Values)}
	sev := Warning
	var limitNote string
	switch {
	case tenantWide:
		subject = "tenant " + u.Tenant
		values["tenant_streams"], values["limit"] = float64(u.TenantStreams), float64(u.TenantLimit)
		limitNote = fmt.Sprintf("; the tenant has %d active streams of its limit of %d (limits.max_streams_per_tenant)", u.TenantStreams, u.TenantLimit)
		if u.TenantStreams >= u.TenantLimit {
			sev = Critical
		}
	case nearService:
		values["limit"] = float64(u.ServiceLimit)
		limitNote = fmt.Sprintf(", of its limit of %d (limits.max_streams_per_service)", u.ServiceLimit)
		if u.Streams >= u.ServiceLimit {
			sev = Critical
		}
	case u.TenantLimit > 0 && u.TenantStreams >= u.TenantLimit:
		sev = Critical
		limitNote = fmt.Sprintf("; its tenant is at its limit of %d streams (limits.max_streams_per_tenant)", u.TenantLimit)
	}
	summary := fmt.Sprintf("the stream label %s takes %d distinct values among the %d active streams of %s%s", l.Name, l.Values, u.Streams, u.Service, limitNote)
	if sev == Critical {
		summary += ": lines of new streams are refused (stream_limit)"
	}
	var samples []string
	for _, v := range l.Examples {
		if len(samples) < MaxSamples {
			samples = append(samples, l.Name+"="+v)
		}
	}
	cause := "each distinct label set is a stream, so a label whose value changes per request or per user (an id, a trace id, a path) opens a new stream for nearly every line: the service's streams grow without bound until limits.max_streams_per_service or max_streams_per_tenant refuses the lines of new ones"
	fix := fmt.Sprintf("stop sending %s as a stream label: send it as structured metadata (Alloy: stage.structured_metadata in loki.process; Promtail: a structured_metadata stage; pino-loki: its meta key; winston-loki: keep it in the logged object, which goes in the line) or drop it (Alloy: stage.label_drop; Promtail: labeldrop), since vigil reads trace and span ids from structured metadata and from the line. Label streams by where logs come from (service, environment, host)", l.Name)
	if streamSourceLabels[l.Name] {
		cause = "the service sends from that many sources (" + l.Name + " names each): each is a stream of its own, and together they approach the stream limit"
		key := "limits.max_streams_per_service"
		if tenantWide {
			key = "limits.max_streams_per_tenant"
		}
		fix = fmt.Sprintf("if %s is needed to tell the sources apart, raise %s in vigil.yaml; otherwise drop it from the stream labels (Alloy: stage.label_drop; Promtail: labeldrop) and keep it as structured metadata", l.Name, key)
	}
	return Finding{
		Code: "log_stream_cardinality", Severity: sev, Subject: subject,
		Evidence: Evidence{Summary: summary, Values: values, Samples: samples},
		Cause:    cause, Fix: fix,
	}
}
