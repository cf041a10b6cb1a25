package otlp

import (
	"bytes"
	"testing"

	colllogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
)

// reflectShape is the shape the schema walk must find, from the OTLP
// descriptors rather than the hand-written schemas: every message field
// set and every element of a repeated one is a message, and an empty one
// (nothing on the wire inside) adds no level.
func reflectShape(m protoreflect.Message, depth int) decodecost.Shape {
	s := decodecost.Shape{Depth: depth}
	visit := func(sub protoreflect.Message) {
		s.Messages++
		if proto.Size(sub.Interface()) == 0 {
			return
		}
		inner := reflectShape(sub, depth+1)
		s.Messages += inner.Messages
		s.Depth = max(s.Depth, inner.Depth)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			for i := range v.List().Len() {
				visit(v.List().Get(i).Message())
			}
			return true
		}
		visit(v.Message())
		return true
	})
	return s
}

func schemaTraces() []byte {
	td := richTraces()
	rs := td.ResourceSpans().At(0)
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.ScopeSpans().At(0).Scope().Attributes().PutBool("scope.attr", true)
	sp := rs.ScopeSpans().At(0).Spans().At(1)
	m := sp.Attributes().PutEmptyMap("nested")
	m.PutEmptySlice("list").AppendEmpty().SetEmptyMap().PutInt("deep", 1)
	m.PutEmptyBytes("raw").FromRaw([]byte{0x0a, 0x00, 0x0a, 0x00})
	// A name that parses as a message: the schema-less walk counts it.
	sp.SetName("\x0a\x00\x0a\x00")
	sp.Links().AppendEmpty().Attributes().PutDouble("weight", 0.5)
	return tracesBody(nil, td, encProto)
}

func schemaLogs() []byte {
	ld := makeLogs("plain", "\x0a\x00")
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	lr.Body().SetEmptyMap().PutEmptySlice("a").AppendEmpty().SetEmptySlice().AppendEmpty().SetStr("x")
	lr.Attributes().PutStr("k", "v")
	lr.SetSeverityText("WARN")
	lr.SetEventName("evt")
	return logsBody(nil, ld, encProto)
}

// TestRequestSchemasMatchDescriptors holds the hand-written request
// schemas to the OTLP descriptors: a body pdata encodes is walked to the
// messages and depth its descriptors give.
func TestRequestSchemasMatchDescriptors(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		schema *decodecost.Message
		msg    proto.Message
	}{
		{"traces", schemaTraces(), tracesRequestSchema, &colltracepb.ExportTraceServiceRequest{}},
		{"traces, 500 spans", tracesBody(nil, benchTraces(500), encProto), tracesRequestSchema, &colltracepb.ExportTraceServiceRequest{}},
		{"logs", schemaLogs(), logsRequestSchema, &colllogspb.ExportLogsServiceRequest{}},
		{"deep logs", deepLogsProto(100), logsRequestSchema, &colllogspb.ExportLogsServiceRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := proto.Unmarshal(tt.body, tt.msg); err != nil {
				t.Fatal(err)
			}
			want := reflectShape(tt.msg.ProtoReflect(), 1)
			got := decodecost.ProtoSchema(tt.body, maxNesting, tt.schema)
			if got != want {
				t.Errorf("shape %+v, want %+v from the descriptors", got, want)
			}
			if all := decodecost.Proto(tt.body, maxNesting); all.Messages < got.Messages || all.Depth < got.Depth {
				t.Errorf("schema-less shape %+v below the schema's %+v", all, got)
			}
		})
	}
}

// FuzzRequestSchemas: on any body the schema walk finds no more than the
// schema-less walk did (it only recurses into fewer fields), and on a body
// the OTLP types decode and encode back unchanged it finds what their
// descriptors give.
func FuzzRequestSchemas(f *testing.F) {
	f.Add(schemaTraces())
	f.Add(schemaLogs())
	f.Add(deepLogsProto(20))
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, c := range []struct {
			schema *decodecost.Message
			msg    proto.Message
		}{
			{tracesRequestSchema, &colltracepb.ExportTraceServiceRequest{}},
			{logsRequestSchema, &colllogspb.ExportLogsServiceRequest{}},
		} {
			got := decodecost.ProtoSchema(body, 16, c.schema)
			if all := decodecost.Proto(body, 16); all.Messages < got.Messages || all.Depth < got.Depth {
				t.Fatalf("schema-less shape %+v below the schema's %+v", all, got)
			}
			if proto.Unmarshal(body, c.msg) != nil {
				continue
			}
			again, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.msg)
			if err != nil || !bytes.Equal(again, body) {
				continue
			}
			if want := reflectShape(c.msg.ProtoReflect(), 1); want.Depth <= 16 && got != want {
				t.Fatalf("shape %+v, want %+v from the descriptors", got, want)
			}
		}
	})
}
