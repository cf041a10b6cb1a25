package embedded

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

// Attribute maps, events and links are stored as attrenc's typed JSON,
// which DuckDB's json functions can query (attributes->>'$."http.route"').
// The ClickHouse backend stores the same format; these short names keep
// this package's code readable.

const tag = attrenc.Tag

func appendMap(b []byte, m pcommon.Map, skip func(k string, v pcommon.Value) bool) []byte {
	return attrenc.AppendMap(b, m, skip)
}

func appendString(b []byte, s string) []byte { return attrenc.AppendString(b, s) }

func decodeMap(src string, dst pcommon.Map) error { return attrenc.DecodeMap(src, dst) }

func appendEvents(b []byte, evs ptrace.SpanEventSlice, start pcommon.Timestamp) []byte {
	return attrenc.AppendEvents(b, evs, start)
}

func appendLinks(b []byte, links ptrace.SpanLinkSlice) []byte { return attrenc.AppendLinks(b, links) }
