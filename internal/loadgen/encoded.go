package loadgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// EncodedTraces is a ring of OTLP/HTTP trace request bodies, each built and
// marshalled once. Next rewrites a body's trace ids and timestamps in place
// before it goes out again, so every request still stores new traces ending
// around the time it is sent, while the sender does no encoding at all: a
// load generator that marshals every request runs out of CPU before the
// server does (telemetrygen saturates its core near 100k spans/s here).
//
// Not safe for concurrent use, and a body Next returns is only valid until
// the next call: give each sender its own ring.
type EncodedTraces struct {
	bodies  []encodedBody
	encoded time.Time // the time the bodies' timestamps were made around
	next    int
	rnd     *rand.Rand // new trace ids, all 128 bits random as an SDK's are
}

type encodedBody struct {
	data  []byte
	spans int
	// traces holds, for each trace of the body, the offsets of every copy
	// of its id (its spans' and links to it); times the offsets of every
	// fixed64 timestamp with its value at encoding.
	traces [][]int
	times  []timestamp
	byID   map[[16]byte]int // index into traces while indexing
}

type timestamp struct {
	off  int
	orig uint64
}

// EncodeTraces makes a ring of requests bodies of tracesPerRequest traces of
// spansPerTrace spans each, from g's data around now.
func (g *Generator) EncodeTraces(requests, tracesPerRequest, spansPerTrace int, now time.Time) (*EncodedTraces, error) {
	if requests < 1 {
		return nil, fmt.Errorf("loadgen: %d requests: need at least one", requests)
	}
	e := &EncodedTraces{encoded: now, rnd: rand.New(rand.NewPCG(g.rnd.Uint64(), g.rnd.Uint64()))}
	for range requests {
		td, _ := g.Traces(tracesPerRequest, spansPerTrace, now)
		data, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return nil, err
		}
		b := encodedBody{data: data, spans: td.SpanCount(), byID: map[[16]byte]int{}}
		if err := b.index(); err != nil {
			return nil, err
		}
		b.byID = nil
		e.bodies = append(e.bodies, b)
	}
	return e, nil
}

// Next returns the next body, patched for a send at now, and its span count.
func (e *EncodedTraces) Next(now time.Time) ([]byte, int) {
	b := &e.bodies[e.next]
	e.next = (e.next + 1) % len(e.bodies)
	// Every send gets wholly new random ids: a store that indexes or
	// partitions by part of the id must see them spread as real ones are.
	for _, offs := range b.traces {
		hi, lo := e.rnd.Uint64(), e.rnd.Uint64()|1
		for _, off := range offs {
			binary.BigEndian.PutUint64(b.data[off:off+8], hi)
			binary.BigEndian.PutUint64(b.data[off+8:off+16], lo)
		}
	}
	shift := uint64(now.Sub(e.encoded))
	for _, t := range b.times {
		binary.LittleEndian.PutUint64(b.data[t.off:t.off+8], t.orig+shift)
	}
	return b.data, b.spans
}

// Field numbers of opentelemetry/proto/collector/trace/v1 and trace/v1.
const (
	fieldResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	fieldScopeSpans    = 2 // ResourceSpans.scope_spans
	fieldSpans         = 2 // ScopeSpans.spans
	fieldTraceID       = 1 // Span.trace_id, Span.Link.trace_id
	fieldStart         = 7 // Span.start_time_unix_nano
	fieldEnd           = 8 // Span.end_time_unix_nano
	fieldEvents        = 11
	fieldEventTime     = 1 // Span.Event.time_unix_nano
	fieldLinks         = 13
)

// index finds the offsets Next patches by walking the message, so that no
// byte pattern in an attribute can be mistaken for an id or a timestamp.
func (b *encodedBody) index() error {
	within := func(want protowire.Number, next fieldFunc) fieldFunc {
		return func(num protowire.Number, typ protowire.Type, v []byte, off int) error {
			if num != want || typ != protowire.BytesType {
				return nil
			}
			return walk(v, off, next)
		}
	}
	return walk(b.data, 0, within(fieldResourceSpans, within(fieldScopeSpans, within(fieldSpans, b.span))))
}

// span records a span's trace id and timestamps, and those of its events
// and links.
func (b *encodedBody) span(num protowire.Number, typ protowire.Type, v []byte, off int) error {
	switch {
	case num == fieldTraceID && typ == protowire.BytesType:
		return b.traceID(v, off)
	case (num == fieldStart || num == fieldEnd) && typ == protowire.Fixed64Type:
		b.times = append(b.times, timestamp{off, binary.LittleEndian.Uint64(v)})
	case num == fieldEvents && typ == protowire.BytesType:
		return walk(v, off, func(num protowire.Number, typ protowire.Type, v []byte, off int) error {
			if num == fieldEventTime && typ == protowire.Fixed64Type {
				b.times = append(b.times, timestamp{off, binary.LittleEndian.Uint64(v)})
			}
			return nil
		})
	case num == fieldLinks && typ == protowire.BytesType:
		return walk(v, off, func(num protowire.Number, typ protowire.Type, v []byte, off int) error {
			if num == fieldTraceID && typ == protowire.BytesType {
				return b.traceID(v, off)
			}
			return nil
		})
	}
	return nil
}

func (b *encodedBody) traceID(v []byte, off int) error {
	if len(v) != 16 {
		return fmt.Errorf("loadgen: a trace id of %d bytes", len(v))
	}
	id := [16]byte(b.data[off : off+16])
	i, ok := b.byID[id]
	if !ok {
		i = len(b.traces)
		b.byID[id] = i
		b.traces = append(b.traces, nil)
	}
	b.traces[i] = append(b.traces[i], off)
	return nil
}

// fieldFunc gets one field of a message: its value (the content of a
// length-delimited field, the 8 bytes of a fixed64) and where that value
// starts in the whole body.
type fieldFunc func(num protowire.Number, typ protowire.Type, v []byte, off int) error

// walk calls fn with every field of msg, which starts at base in the body.
func walk(msg []byte, base int, fn fieldFunc) error {
	for i := 0; i < len(msg); {
		num, typ, n := protowire.ConsumeTag(msg[i:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		at := i + n
		m := protowire.ConsumeFieldValue(num, typ, msg[at:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		v, voff := msg[at:at+m], at
		if typ == protowire.BytesType {
			_, ln := protowire.ConsumeVarint(msg[at:])
			v, voff = msg[at+ln:at+m], at+ln
		}
		if err := fn(num, typ, v, base+voff); err != nil {
			return err
		}
		i = at + m
	}
	return nil
}
