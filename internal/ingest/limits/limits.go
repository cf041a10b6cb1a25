// Package limits validates and bounds incoming telemetry. Every check here
// either fixes an item (truncating, replacing invalid UTF-8) or rejects it,
// and always names a reason, so that vigil_rejected_total{signal,reason}
// tells an operator exactly what was lost and why.
package limits

import (
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
)

// Limits bounds what one item may carry. The zero value of a field means
// "use the default"; Defaults fills them.
type Limits struct {
	// MaxRequestBytes caps a request body after decompression. It is
	// checked while inflating, so a compression bomb is never held in memory.
	MaxRequestBytes int64
	// MaxAttributeValueLength truncates longer string attribute values (and log bodies).
	MaxAttributeValueLength int
	// MaxAttributesPerItem drops the attributes of a span, span event or log record past this count.
	MaxAttributesPerItem int
	// MaxLabelsPerSeries rejects series with more labels (remote_write, OTLP metrics).
	MaxLabelsPerSeries int
	// MaxLabelNameLength and MaxLabelValueLength reject series with longer label names or values.
	MaxLabelNameLength  int
	MaxLabelValueLength int
	// MaxPastAge rejects items whose timestamp lies further in the past
	// (they would fall outside retention anyway).
	MaxPastAge time.Duration
	// MaxFutureSkew rejects items whose timestamp lies further in the future.
	MaxFutureSkew time.Duration
}

// Defaults returns the limits vigil uses when none are configured.
func Defaults() Limits {
	return Limits{
		MaxRequestBytes:         20 << 20,
		MaxAttributeValueLength: 16 << 10,
		MaxAttributesPerItem:    128,
		MaxLabelsPerSeries:      64,
		MaxLabelNameLength:      1024,
		MaxLabelValueLength:     16 << 10,
		MaxPastAge:              storage.DefaultRetention,
		MaxFutureSkew:           time.Hour,
	}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := Defaults()
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = d.MaxRequestBytes
	}
	if l.MaxAttributeValueLength == 0 {
		l.MaxAttributeValueLength = d.MaxAttributeValueLength
	}
	if l.MaxAttributesPerItem == 0 {
		l.MaxAttributesPerItem = d.MaxAttributesPerItem
	}
	if l.MaxLabelsPerSeries == 0 {
		l.MaxLabelsPerSeries = d.MaxLabelsPerSeries
	}
	if l.MaxLabelNameLength == 0 {
		l.MaxLabelNameLength = d.MaxLabelNameLength
	}
	if l.MaxLabelValueLength == 0 {
		l.MaxLabelValueLength = d.MaxLabelValueLength
	}
	if l.MaxPastAge == 0 {
		l.MaxPastAge = d.MaxPastAge
	}
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = d.MaxFutureSkew
	}
	return l
}

// Reasons used as the "reason" label of vigil_rejected_total. Keep them
// stable: people alert on them.
const (
	ReasonInvalidTraceID    = "invalid_trace_id"
	ReasonInvalidSpanID     = "invalid_span_id"
	ReasonTimestampTooOld   = "timestamp_too_old"
	ReasonTimestampInFuture = "timestamp_in_future"
	ReasonInvalidUTF8       = "invalid_utf8"         // fixed, not dropped
	ReasonValueTruncated    = "value_truncated"      // fixed, not dropped
	ReasonTooManyAttributes = "too_many_attributes"  // extra attributes dropped
	ReasonTooManyLabels     = "too_many_labels"      // series rejected
	ReasonLabelNameTooLong  = "label_name_too_long"  // series rejected
	ReasonLabelValueTooLong = "label_value_too_long" // series rejected
	ReasonInvalidLabel      = "invalid_label"        // series rejected
	ReasonOutOfOrder        = "out_of_order"         // sample rejected by the TSDB
	ReasonSeriesLimit       = "series_limit"         // sample rejected
	ReasonEndBeforeStart    = "end_before_start"     // span rejected
	ReasonUndecodable       = "undecodable"          // whole request rejected
	ReasonRequestTooLarge   = "request_too_large"    // whole request rejected
	ReasonOverloaded        = "overloaded"           // whole request refused, retryable
	ReasonUnsupported       = "unsupported"          // item asked for what vigil does not do (a bulk update)
	ReasonItemTooLarge      = "item_too_large"       // item rejected, the rest of its request kept
	ReasonLineTooLong       = "line_too_long"        // Loki push line rejected, the rest of its request kept
	ReasonMalformedStream   = "malformed_stream"     // Loki push stream or entry that does not decode, the rest kept
	ReasonTooManyEntries    = "too_many_entries"     // Loki push entries past the most one request may carry
	ReasonProfileTooLarge   = "profile_too_large"    // profile with more locations, functions, samples or bytes than allowed
	ReasonWrongSampleTypes  = "wrong_sample_types"   // profile whose sample types are not those of its kind
)
