package otlp

import (
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

type tracesBatch struct{ td ptrace.Traces }

func (b tracesBatch) items() int { return b.td.SpanCount() }

type tracesCodec struct{}

func (tracesCodec) signal() string { return ingest.SignalTraces }

func (tracesCodec) decode(body []byte, enc wireEncoding) (tracesBatch, error) {
	req := ptraceotlp.NewExportRequest()
	var err error
	if enc == encJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	return tracesBatch{td: req.Traces()}, err
}

func (tracesCodec) repair(body []byte, enc wireEncoding) ([]byte, limits.Report, error) {
	if enc == encJSON {
		return repairJSON(body, tracesShape)
	}
	return repairTracesProto(body)
}

func (tracesCodec) sanitize(l limits.Limits, b tracesBatch, now time.Time) limits.Report {
	return l.SanitizeTraces(b.td, now)
}

func (tracesCodec) response(rejected int64, message string, enc wireEncoding) ([]byte, error) {
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(rejected)
		ps.SetErrorMessage(message)
	}
	if enc == encJSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}

type logsBatch struct{ ld plog.Logs }

func (b logsBatch) items() int { return b.ld.LogRecordCount() }

type logsCodec struct{}

func (logsCodec) signal() string { return ingest.SignalLogs }

func (logsCodec) decode(body []byte, enc wireEncoding) (logsBatch, error) {
	req := plogotlp.NewExportRequest()
	var err error
	if enc == encJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	return logsBatch{ld: req.Logs()}, err
}

func (logsCodec) repair(body []byte, enc wireEncoding) ([]byte, limits.Report, error) {
	if enc == encJSON {
		return repairJSON(body, logsShape)
	}
	return repairLogsProto(body)
}

func (logsCodec) sanitize(l limits.Limits, b logsBatch, now time.Time) limits.Report {
	return l.SanitizeLogs(b.ld, now)
}

func (logsCodec) response(rejected int64, message string, enc wireEncoding) ([]byte, error) {
	resp := plogotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedLogRecords(rejected)
		ps.SetErrorMessage(message)
	}
	if enc == encJSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}

type metricsBatch struct{ md pmetric.Metrics }

func (b metricsBatch) items() int { return b.md.DataPointCount() }

type metricsCodec struct{}

func (metricsCodec) signal() string { return ingest.SignalMetrics }

func (metricsCodec) decode(body []byte, enc wireEncoding) (metricsBatch, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if enc == encJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	return metricsBatch{md: req.Metrics()}, err
}

func (metricsCodec) repair(body []byte, enc wireEncoding) ([]byte, limits.Report, error) {
	if enc == encJSON {
		return repairJSON(body, metricsShape)
	}
	return repairMetricsProto(body)
}

// sanitize does nothing for metrics: series and label limits are applied
// by the metrics consumer, which turns data points into series.
func (metricsCodec) sanitize(limits.Limits, metricsBatch, time.Time) limits.Report {
	return limits.Report{Item: "data points"}
}

func (metricsCodec) response(rejected int64, message string, enc wireEncoding) ([]byte, error) {
	resp := pmetricotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(rejected)
		ps.SetErrorMessage(message)
	}
	if enc == encJSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}
