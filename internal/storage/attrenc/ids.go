package attrenc

import (
	"encoding/binary"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The column stores keep trace ids as two big-endian 64-bit halves and span
// ids as one, so that ids sort and compare as integers.

// TraceIDToUints splits a trace id into its high and low halves.
func TraceIDToUints(id pcommon.TraceID) (uint64, uint64) {
	return binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])
}

// UintsToTraceID joins the halves TraceIDToUints made.
func UintsToTraceID(hi, lo uint64) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

// SpanIDToUint reads a span id as an integer.
func SpanIDToUint(id pcommon.SpanID) uint64 { return binary.BigEndian.Uint64(id[:]) }

// UintToSpanID is the span id SpanIDToUint read.
func UintToSpanID(v uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// Enum8 keeps defined enum values (all below 256); anything else is not a
// value OTLP defines and is stored as 0 (unspecified).
func Enum8(v int32) uint8 {
	if v < 0 || v > 0xff {
		return 0
	}
	return uint8(v)
}
