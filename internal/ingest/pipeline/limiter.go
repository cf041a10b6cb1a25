package pipeline

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-observability/vigil/internal/ingest"
)

// Metrics bounds the OTLP metric requests converted and appended at once.
// The TSDB appends concurrently and commits synchronously, so metrics need
// no queue; they need a cap on work in flight so that overload is refused
// with ingest.ErrOverloaded rather than piling up in memory.
type Metrics struct {
	next  ingest.MetricsConsumer
	slots chan struct{}
}

// NewMetrics admits at most maxInFlight concurrent requests to next.
func NewMetrics(next ingest.MetricsConsumer, maxInFlight int) *Metrics {
	return &Metrics{next: next, slots: make(chan struct{}, max(1, maxInFlight))}
}

// ConsumeMetrics passes md on, or refuses it at once when full.
func (l *Metrics) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	select {
	case l.slots <- struct{}{}:
	default:
		return ingest.ErrOverloaded // the receiver counts the refusal
	}
	defer func() { <-l.slots }()
	return l.next.ConsumeMetrics(ctx, md)
}
