// Package selfobs holds vigil's own metrics and logging set-up. Every
// component receives what it needs from here through its options; nothing is
// registered globally.
package selfobs

import (
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// IngestMetrics counts what flows through the write path, per signal
// ("traces", "logs", "metrics"). Items are spans, log records and samples.
type IngestMetrics struct {
	Received      *prometheus.CounterVec   // {signal}
	Stored        *prometheus.CounterVec   // {signal}
	Rejected      *prometheus.CounterVec   // {signal,reason}
	QueueDepth    *prometheus.GaugeVec     // {signal}: items waiting to be written
	WriteDuration *prometheus.HistogramVec // {signal}: one storage write (batch)
	// Sources records who sent what was rejected (RejectFrom).
	Sources *RejectionSources
}

// NewIngestMetrics creates the ingest metrics and registers them with reg
// (which may be nil, for tests).
func NewIngestMetrics(reg prometheus.Registerer) *IngestMetrics {
	m := &IngestMetrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_received_total",
			Help: "Items (spans, log records, samples) received by ingest, before validation.",
		}, []string{"signal"}),
		Stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_stored_total",
			Help: "Items durably written to storage and acknowledged.",
		}, []string{"signal"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rejected_total",
			Help: "Items rejected or altered by validation and limits, by reason.",
		}, []string{"signal", "reason"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_queue_depth",
			Help: "Items accepted into the write queue and not yet written.",
		}, []string{"signal"}),
		WriteDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_storage_write_duration_seconds",
			Help:    "Duration of one storage write (a batch, including the durable commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"signal"}),
		Sources: NewRejectionSources(nil),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Stored, m.Rejected, m.QueueDepth, m.WriteDuration)
	}
	return m
}

// Reject adds n to vigil_rejected_total{signal,reason}. It is safe on a nil
// receiver so that components built without metrics in tests need no guard.
func (m *IngestMetrics) Reject(signal, reason string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.Rejected.WithLabelValues(signal, reason).Add(float64(n))
}

// Receive adds n to vigil_received_total{signal}; safe on nil.
func (m *IngestMetrics) Receive(signal string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.Received.WithLabelValues(signal).Add(float64(n))
}

// NewLogger returns vigil's structured JSON logger writing to w. Each
// top-level key appears once per line (see uniqueKeys).
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&uniqueKeys{next: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}
