package otlp

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
)

// maxNesting bounds how deeply a request may nest messages (protobuf) or
// objects and arrays (JSON). Real OTLP stays within a few dozen levels even
// with structured log bodies (each level of a nested attribute value costs
// two or three). pdata's protobuf decoder recurses without a limit, and a
// body of a few MiB nested a few million levels deep overflows the
// goroutine stack, which is fatal to the whole process rather than a
// recoverable panic; anything downstream that walks values recursively has
// the same weakness. So such bodies are refused before decoding.
const maxNesting = 512

var errTooDeep = fmt.Errorf("request nests deeper than %d levels", maxNesting)

// checkNesting returns errTooDeep when body nests deeper than maxNesting,
// and otherwise the body's shape, from which its decoded size is
// estimated. A protobuf body is walked by its schema when there is one
// (traces and logs: strings are then skipped rather than tried as
// messages, and the depth is pdata's own recursion), else without it,
// with packed naming the request type's packed varint fields. It says
// nothing about whether body is otherwise valid.
func checkNesting(body []byte, enc wireEncoding, schema *decodecost.Message, packed decodecost.PackedVarints) (decodecost.Shape, error) {
	var s decodecost.Shape
	switch {
	case enc == encJSON:
		s = decodecost.JSON(body, maxNesting)
	case schema != nil:
		s = decodecost.ProtoSchema(body, maxNesting, schema)
	default:
		s = decodecost.ProtoPacked(body, maxNesting, packed)
	}
	if s.Depth > maxNesting {
		return s, errTooDeep
	}
	return s, nil
}

// The message fields of the OTLP trace and log requests, as pdata's
// decoder (v1.70) reads them: each one it recurses into is here, field
// 1000 being the deprecated instrumentation_library_* lists it still
// accepts. Ids are fixed-size byte fields, not messages.
var (
	anyValueSchema = &decodecost.Message{}
	keyValueSchema = &decodecost.Message{Fields: []decodecost.Field{{Num: 2, Message: anyValueSchema}}}
	attributesOnly = func(num protowire.Number) *decodecost.Message {
		return &decodecost.Message{Fields: []decodecost.Field{{Num: num, Message: keyValueSchema}}}
	}
	resourceSchema = &decodecost.Message{Fields: []decodecost.Field{
		{Num: 1, Message: keyValueSchema},
		{Num: 3, Message: &decodecost.Message{}}, // entity_refs: strings only
	}}
	scopeSchema = attributesOnly(3)

	spanSchema = &decodecost.Message{Fields: []decodecost.Field{
		{Num: 9, Message: keyValueSchema},
		{Num: 11, Message: attributesOnly(3)},     // events
		{Num: 13, Message: attributesOnly(4)},     // links
		{Num: 15, Message: &decodecost.Message{}}, // status
	}}
	scopeSpansSchema    = &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: scopeSchema}, {Num: 2, Message: spanSchema}}}
	resourceSpansSchema = &decodecost.Message{Fields: []decodecost.Field{
		{Num: 1, Message: resourceSchema}, {Num: 2, Message: scopeSpansSchema}, {Num: 1000, Message: scopeSpansSchema},
	}}
	// tracesRequestSchema is ExportTraceServiceRequest's.
	tracesRequestSchema = &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: resourceSpansSchema}}}

	logRecordSchema = &decodecost.Message{Fields: []decodecost.Field{
		{Num: 5, Message: anyValueSchema}, // body
		{Num: 6, Message: keyValueSchema},
	}}
	scopeLogsSchema    = &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: scopeSchema}, {Num: 2, Message: logRecordSchema}}}
	resourceLogsSchema = &decodecost.Message{Fields: []decodecost.Field{
		{Num: 1, Message: resourceSchema}, {Num: 2, Message: scopeLogsSchema}, {Num: 1000, Message: scopeLogsSchema},
	}}
	// logsRequestSchema is ExportLogsServiceRequest's.
	logsRequestSchema = &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: resourceLogsSchema}}}
)

func init() {
	// AnyValue nests through array_value (ArrayValue.values: AnyValue) and
	// kvlist_value (KeyValueList.values: KeyValue), the only recursion in
	// these requests, and the one a hostile body uses.
	anyValueSchema.Fields = []decodecost.Field{
		{Num: 5, Message: &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: anyValueSchema}}}},
		{Num: 6, Message: &decodecost.Message{Fields: []decodecost.Field{{Num: 1, Message: keyValueSchema}}}},
	}
}
