package slo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/internal/spanmetrics"
)

// LatencyBuckets are the bounds of the span duration histogram vigil
// records (the OpenTelemetry spanmetrics connector's defaults), the only
// thresholds a latency SLI can count against. They must stay equal to the
// buckets internal/spanmetrics writes.
var LatencyBuckets = []time.Duration{
	2 * time.Millisecond, 4 * time.Millisecond, 6 * time.Millisecond, 8 * time.Millisecond,
	10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	400 * time.Millisecond, 800 * time.Millisecond, time.Second, 1400 * time.Millisecond,
	2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
}

// Label values of the span metrics that a span SLI selects on.
const (
	statusError = "STATUS_CODE_ERROR"
	// serverKinds are the spans in which a service answers a request or
	// handles a message; its client and internal spans are not its SLI.
	serverKinds = "SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"
)

// bucketLabel returns the le label value of a histogram bound, formatted as
// the span metrics write it, or "" when d is not a bound.
func bucketLabel(d time.Duration) string {
	for _, b := range LatencyBuckets {
		if b == d {
			return strconv.FormatFloat(b.Seconds(), 'f', -1, 64)
		}
	}
	return ""
}

func boundsList() string {
	s := make([]string, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		s[i] = b.String()
	}
	return strings.Join(s, ", ")
}

// spanEvents writes a span SLI as an events SLI over the span metrics.
//
// The error query falls back to 0 because a service that never failed has
// no error series at all, and an SLI without a value would hide the SLO.
// The total query keeps only windows with traffic: an idle window would
// otherwise give 0/0 = NaN, and one NaN in the 5m series makes the
// period-long average NaN for the whole period.
func spanEvents(sp SpansSLI, specService string) EventsSLI {
	service := sp.Service
	if service == "" {
		service = specService
	}
	sel := []string{"service_name=" + strconv.Quote(service)}
	if sp.Operation != "" {
		sel = append(sel, "span_name="+strconv.Quote(sp.Operation))
	}
	sel = append(sel, "span_kind=~"+strconv.Quote(serverKinds))

	rate := func(metric string, extra ...string) string {
		return fmt.Sprintf("sum(rate(%s{%s}[{{.window}}]))", metric, strings.Join(append(sel[:len(sel):len(sel)], extra...), ", "))
	}
	if le := bucketLabel(time.Duration(sp.LatencyThreshold)); le != "" {
		count := spanmetrics.MetricSpanDuration + "_count"
		return EventsSLI{
			ErrorQuery: rate(count) + "\n-\n" + rate(spanmetrics.MetricSpanDuration+"_bucket", "le="+strconv.Quote(le)),
			TotalQuery: rate(count) + " > 0",
		}
	}
	return EventsSLI{
		ErrorQuery: rate(spanmetrics.MetricSpanCalls, "status_code="+strconv.Quote(statusError)) + " or vector(0)",
		TotalQuery: rate(spanmetrics.MetricSpanCalls) + " > 0",
	}
}
