// Package decodecost estimates, before decoding, how much memory a protobuf
// or JSON request takes once decoded, and keeps the requests being decoded
// at once within a byte budget.
//
// Wire size says little about decoded size: an empty repeated message costs
// two bytes on the wire and a Go struct of a hundred bytes or more once
// decoded, and gzip shrinks a run of them a thousandfold. Twenty kilobytes
// of compressed OTLP inflate to 20 MiB of empty entries and decode to more
// than a gigabyte. So admission charges what a request will cost decoded,
// estimated from a cheap walk of its bytes, not the number of requests.
package decodecost

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
)

// PerMessage is what one decoded message (a protobuf sub-message or a JSON
// object) is charged on top of the wire bytes. The Go structs the OTLP and
// remote_write decoders allocate take 50 to 200 bytes each with their
// slice slots; an empty ResourceSpans costs about 150.
const PerMessage = 128

// Shape is what a walk of a request body found.
type Shape struct {
	// Depth is the deepest nesting seen; the walk stops early once it
	// passes the limit it was given, so Depth is then only a lower bound
	// and Messages incomplete.
	Depth int
	// Messages counts sub-messages (protobuf) or objects (JSON).
	Messages int64
	// Scalars counts the elements of packed repeated varints (protobuf)
	// and of arrays (JSON): a byte or two on the wire, eight decoded.
	Scalars int64
}

// PerScalar is what one element of a packed varint field or a JSON array
// is charged: the uint64 or int64 it decodes to.
const PerScalar = 8

// PackedVarints names the packed repeated varint fields of a request type
// by their path of field numbers from the top-level message. Without a
// schema their bytes look like a string; each byte of them can decode to
// eight.
type PackedVarints [][]protowire.Number

var (
	// OTLPMetricsPacked: ExportMetricsServiceRequest.resource_metrics.
	// scope_metrics.metrics.exponential_histogram.data_points.{positive,
	// negative}.bucket_counts. (Explicit histograms' bucket counts are
	// fixed64, as large on the wire as decoded.)
	OTLPMetricsPacked = PackedVarints{{1, 2, 2, 10, 1, 8, 2}, {1, 2, 2, 10, 1, 9, 2}}
	// RemoteWritePacked: WriteRequest.timeseries.histograms.{negative,
	// positive}_deltas.
	RemoteWritePacked = PackedVarints{{1, 4, 9}, {1, 4, 12}}
)

func (p PackedVarints) match(path []protowire.Number) bool {
	last := path[len(path)-1]
	for _, q := range p {
		// The last field number differs first, and most often.
		if len(q) == len(path) && q[len(q)-1] == last && slices.Equal(q, path) {
			return true
		}
	}
	return false
}

// Cost estimates the bytes a body of wireBytes with this shape holds while
// it is decoded: the body itself, the strings copied out of it, and every
// message's struct.
func (s Shape) Cost(wireBytes int) int64 {
	return 2*int64(wireBytes) + PerMessage*s.Messages + PerScalar*s.Scalars
}

// Proto walks b, an encoded protobuf message, without its schema. A
// length-delimited field may be a string or a message: it is counted as a
// message whenever its bytes parse as one (an empty one always does), which
// can only overestimate. Each byte is read as a field header by at most one
// level, so the walk is linear in len(b); it stops once nesting passes
// maxDepth, which also bounds its own recursion.
func Proto(b []byte, maxDepth int) Shape {
	return ProtoPacked(b, maxDepth, nil)
}

// ProtoPacked is Proto for a request type whose packed varint fields are
// known: their elements are counted as Scalars.
func ProtoPacked(b []byte, maxDepth int, packed PackedVarints) Shape {
	s, _ := protoShape(b, 1, maxDepth, packed, make([]protowire.Number, 0, 16))
	return s
}

// ProtoPackedAt is ProtoPacked for b, a message nested in the request at
// the field numbers of path (a decoder that reads the levels above by its
// schema walks only the messages it hands to a general decoder). Depth
// counts from the request, so b's own level is len(path)+1.
func ProtoPackedAt(b []byte, path []protowire.Number, maxDepth int, packed PackedVarints) Shape {
	s, _ := protoShape(b, len(path)+1, maxDepth, packed, append(make([]protowire.Number, 0, len(path)+16), path...))
	return s
}

// Message is the schema of a protobuf message type as far as a walk needs
// it: which of its length-delimited fields hold messages. Without it a
// walk tries every string as a message, which costs as much again as
// decoding when most of a body's bytes are names, ids and attribute
// values.
type Message struct {
	// Fields lists the fields that hold a message, and that message's
	// schema; a message type refers to itself through pointers. The
	// other fields are skipped whole.
	Fields []Field
}

// Field is one message-valued field of a Message.
type Field struct {
	Num     protowire.Number
	Message *Message
}

func (m *Message) field(num protowire.Number) *Message {
	for _, f := range m.Fields {
		if f.Num == num {
			return f.Message
		}
	}
	return nil
}

// ProtoSchema is Proto for a request whose message fields are known: only
// they are walked as messages, as the decoder that follows reads them.
// Depth is the decoder's recursion, and Messages what it allocates, so
// neither can be larger than Proto's. Packed varint fields are not
// supported: a schema with them must use ProtoPacked.
func ProtoSchema(b []byte, maxDepth int, m *Message) Shape {
	s, _ := schemaShape(b, 1, maxDepth, m)
	return s
}

// schemaShape is protoShape with recursion only into m's message fields;
// a field that should hold a message but does not parse as one counts as
// protoShape counts a string, since the decoder refuses the body anyway.
func schemaShape(b []byte, depth, maxDepth int, m *Message) (Shape, bool) {
	s := Shape{Depth: depth}
	if depth > maxDepth {
		return s, true
	}
	// Tags, lengths and the scalars between them are decoded inline when
	// they take one byte (and fixed64, fixed32 skipped): most of a span's
	// fields, which the calls would otherwise dominate.
	for len(b) > 0 {
		var (
			num protowire.Number
			typ protowire.Type
		)
		if c := b[0]; c < 0x80 {
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			if num < protowire.MinValidNumber {
				return s, false
			}
			b = b[1:]
		} else {
			var n int
			if num, typ, n = protowire.ConsumeTag(b); n < 0 {
				return s, false
			}
			b = b[n:]
		}
		switch typ {
		case protowire.BytesType:
		case protowire.Fixed64Type:
			if len(b) < 8 {
				return s, false
			}
			b = b[8:]
			continue
		case protowire.Fixed32Type:
			if len(b) < 4 {
				return s, false
			}
			b = b[4:]
			continue
		case protowire.VarintType:
			if len(b) > 0 && b[0] < 0x80 {
				b = b[1:]
				continue
			}
			fallthrough
		default:
			// Groups are walked by protowire itself, with its own limit.
			k := protowire.ConsumeFieldValue(num, typ, b)
			if k < 0 {
				return s, false
			}
			b = b[k:]
			continue
		}
		var v []byte
		if len(b) > 0 && b[0] < 0x80 {
			n := 1 + int(b[0])
			if n > len(b) {
				return s, false
			}
			v, b = b[1:n], b[n:]
		} else {
			var k int
			if v, k = protowire.ConsumeBytes(b); k < 0 {
				return s, false
			}
			b = b[k:]
		}
		sub := m.field(num)
		if sub == nil {
			continue
		}
		if len(v) == 0 {
			s.Messages++
			continue
		}
		if inner, ok := schemaShape(v, depth+1, maxDepth, sub); ok || inner.Depth > maxDepth {
			s.Messages += 1 + inner.Messages
			s.Depth = max(s.Depth, inner.Depth)
			if s.Depth > maxDepth {
				return s, true
			}
		}
	}
	return s, true
}

// MaxCost bounds Shape.Cost for any body of wireBytes: every message takes
// at least two bytes of the wire (its tag and length), every scalar one.
func MaxCost(wireBytes int) int64 {
	return (2 + PerMessage/2 + PerScalar) * int64(wireBytes)
}

// protoShape returns the shape of b, a message at depth reached through
// the field numbers of path, and whether b parses as a message at all.
func protoShape(b []byte, depth, maxDepth int, packed PackedVarints, path []protowire.Number) (Shape, bool) {
	s := Shape{Depth: depth}
	if depth > maxDepth {
		return s, true
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return s, false
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := consumeBytes(b)
			if m < 0 {
				return s, false
			}
			b = b[m:]
			sub := append(path, num)
			if packed != nil && packed.match(sub) {
				// Every varint ends with a byte below 0x80.
				for _, c := range v {
					if c < 0x80 {
						s.Scalars++
					}
				}
				continue
			}
			if len(v) == 0 {
				s.Messages++
				continue
			}
			if inner, ok := protoShape(v, depth+1, maxDepth, packed, sub); ok || inner.Depth > maxDepth {
				s.Messages += 1 + inner.Messages
				s.Scalars += inner.Scalars
				s.Depth = max(s.Depth, inner.Depth)
				if s.Depth > maxDepth {
					return s, true
				}
			}
			continue
		}
		// Groups are walked by protowire itself, with its own limit.
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return s, false
		}
		b = b[m:]
	}
	return s, true
}

// consumeTag is protowire.ConsumeTag with the one-byte tags of field
// numbers up to 15 decoded inline: the walk tries every string as a
// message, so most of its time is spent on tags.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		num := protowire.Number(b[0] >> 3)
		if num < protowire.MinValidNumber {
			return 0, 0, -1
		}
		return num, protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeBytes is protowire.ConsumeBytes with lengths below 128 decoded
// inline.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		n := 1 + int(b[0])
		if n > len(b) {
			return nil, -1
		}
		return b[1:n], n
	}
	return protowire.ConsumeBytes(b)
}

// JSON counts the objects of b, its array and object elements (commas: an
// element may be a number that decodes to eight bytes) and their nesting
// (objects and arrays), outside strings. It stops once nesting passes maxDepth. Malformed JSON is
// left for the decoder to report.
func JSON(b []byte, maxDepth int) Shape {
	var s Shape
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if c == '{' {
				s.Messages++
			}
			depth++
			if depth > s.Depth {
				s.Depth = depth
				if depth > maxDepth {
					return s
				}
			}
		case '}', ']':
			depth--
		case ',':
			s.Scalars++
		}
	}
	return s
}

var (
	// ErrTooLarge means a request alone would cost more than the whole
	// budget: it can never be admitted, retrying does not help.
	ErrTooLarge = errors.New("request would take too much memory to decode")
	// ErrBusy means the budget is taken by requests being decoded now;
	// the same request may be admitted later.
	ErrBusy = errors.New("decode memory budget in use, retry later")
)

// Budget bounds the estimated bytes of the requests being decoded at once,
// across every receiver that shares it. A nil *Budget admits everything.
// It is safe for concurrent use.
type Budget struct {
	size int64
	mu   sync.Mutex
	used int64
}

// NewBudget returns a budget of size bytes (at least one).
func NewBudget(size int64) *Budget {
	return &Budget{size: max(size, 1)}
}

// Register exports the budget's size and use as
// vigil_decode_budget_bytes and vigil_decode_budget_used_bytes.
func (b *Budget) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_decode_budget_bytes",
			Help: "Memory the ingest receivers may use at once for request bodies being read and decoded (estimated decoded size).",
		}, func() float64 { return float64(b.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_decode_budget_used_bytes",
			Help: "Part of vigil_decode_budget_bytes held by requests now.",
		}, func() float64 { return float64(b.Used()) }),
	)
}

// Used is what reservations hold now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Size is the budget's capacity in bytes; zero for a nil budget.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Reserve takes cost bytes without waiting: waiting would let slow or
// hostile senders pile up while holding their bodies. It fails with
// ErrTooLarge when cost exceeds the whole budget and ErrBusy when the rest
// is taken. release returns the bytes; call it once decoded data is no
// longer held (or handed to a bounded queue).
func (b *Budget) Reserve(cost int64) (release func(), err error) {
	r := b.Start()
	if err := r.Resize(cost); err != nil {
		return nil, err
	}
	return r.Release, nil
}

// Start returns an empty reservation, to be resized as a request's cost
// becomes known: its body while it is read, then its decoded estimate.
func (b *Budget) Start() *Reservation {
	return &Reservation{b: b}
}

// Reservation is bytes held from a Budget for one request. It is not safe
// for concurrent use; a nil Budget's reservations always succeed.
type Reservation struct {
	b    *Budget
	held int64
}

// Resize makes the reservation hold n bytes, without waiting. Growing
// fails with ErrTooLarge when n exceeds the whole budget and ErrBusy when
// the rest is taken; the reservation then keeps what it held.
func (r *Reservation) Resize(n int64) error {
	b := r.b
	if b == nil {
		return nil
	}
	if n > b.size {
		return fmt.Errorf("%w: about %d MiB decoded, the limit is %d MiB", ErrTooLarge, n>>20, b.size>>20)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > r.held && b.used+n-r.held > b.size {
		return ErrBusy
	}
	b.used += n - r.held
	r.held = n
	return nil
}

// Size is the size of the reservation's budget: what it can never grow
// past (the largest int64 for a nil Budget's).
func (r *Reservation) Size() int64 {
	if r.b == nil {
		return math.MaxInt64
	}
	return r.b.size
}

// Held is what the reservation holds.
func (r *Reservation) Held() int64 { return r.held }

// Release returns everything the reservation holds. It may be called more
// than once.
func (r *Reservation) Release() { _ = r.Resize(0) }

// ChargingReader charges a reservation for the bytes read through it, in
// steps of chunk bytes ahead of what was read, so a body is paid for
// before it is in memory rather than after. A refused charge ends the
// read with the reservation's error (ErrBusy or ErrTooLarge).
func ChargingReader(src io.Reader, r *Reservation, chunk int64) io.Reader {
	return &chargingReader{src: src, r: r, chunk: max(chunk, 1)}
}

type chargingReader struct {
	src   io.Reader
	r     *Reservation
	chunk int64
	read  int64
}

func (c *chargingReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.chunk {
		p = p[:c.chunk]
	}
	if c.read+int64(len(p)) > c.r.Held() {
		if err := c.r.Resize(c.read + c.chunk); err != nil {
			return 0, err
		}
	}
	n, err := c.src.Read(p)
	c.read += int64(n)
	return n, err
}

// DefaultSize is the budget when no memory limit sizes it.
const DefaultSize = 1 << 30

// SizeFor returns the budget for a process with headroom bytes of heap
// left for requests being decoded (memlimit.Guard.Headroom); zero or less
// (no memory limit) gives DefaultSize.
func SizeFor(headroom int64) int64 {
	if headroom <= 0 {
		return DefaultSize
	}
	return headroom
}
