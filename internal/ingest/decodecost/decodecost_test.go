package decodecost

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

func repeat(p string, n int) []byte { return bytes.Repeat([]byte(p), n) }

func TestProto(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("GET /cart")
	span.SetStartTimestamp(1)
	span.SetEndTimestamp(2)
	otlp, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}
	rw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		body         []byte
		minMessages  int64
		maxMessages  int64
		wantDepthMin int
	}{
		{"empty body", nil, 0, 0, 1},
		// Field 1, length 0, a million times: the shape of the
		// amplification attack, a million empty ResourceSpans.
		{"empty entries", repeat("\x0a\x00", 1_000_000), 1_000_000, 1_000_000, 1},
		// One ResourceSpans holding a million empty ScopeSpans.
		{"nested empty entries", append([]byte{0x0a, 0x80, 0x89, 0x7a}, repeat("\x12\x00", 1_000_000)...), 1_000_001, 1_000_001, 2},
		// resource_spans, resource, attribute, value, scope_spans, span;
		// strings that happen to parse as messages may add a few.
		{"one span", otlp, 6, 12, 4},
		// timeseries, 2 labels, 1 sample.
		{"remote_write", rw, 4, 8, 2},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Proto(tt.body, 512)
			if s.Messages < tt.minMessages || s.Messages > tt.maxMessages {
				t.Errorf("Messages = %d, want %d..%d", s.Messages, tt.minMessages, tt.maxMessages)
			}
			if s.Depth < tt.wantDepthMin {
				t.Errorf("Depth = %d, want at least %d", s.Depth, tt.wantDepthMin)
			}
			if got, floor := s.Cost(len(tt.body)), PerMessage*tt.minMessages; got < floor {
				t.Errorf("Cost = %d, below the %d its messages alone take", got, floor)
			}
		})
	}
}

func TestProtoStopsPastMaxDepth(t *testing.T) {
	// Each level is field 1 holding the next; the innermost is empty,
	// so the body nests 40 messages deep.
	var b []byte
	for range 40 {
		b = protowireBytes(1, b)
	}
	if s := Proto(b, 10); s.Depth <= 10 {
		t.Errorf("Depth = %d, want past the limit of 10", s.Depth)
	}
	if s := Proto(b, 100); s.Depth != 40 {
		t.Errorf("Depth = %d, want 40", s.Depth)
	}
}

func protowireBytes(num byte, v []byte) []byte {
	out := []byte{num<<3 | 2}
	n := len(v)
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	out = append(out, byte(n))
	return append(out, v...)
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		messages  int64
		wantDepth int
	}{
		{"empty", ``, 0, 0},
		{"empty entries", `{"resourceSpans":[` + string(repeat(`{},`, 1000)) + `{}]}`, 1002, 3},
		{"braces in strings do not count", `{"name":"{{{{[[[[\"{"}`, 1, 1},
		{"arrays nest but are not messages", `[[[[1]]]]`, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := JSON([]byte(tt.body), 512)
			if s.Messages != tt.messages || s.Depth != tt.wantDepth {
				t.Errorf("JSON = %+v, want %d messages, depth %d", s, tt.messages, tt.wantDepth)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	r1, err := b.Reserve(60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(50); !errors.Is(err, ErrBusy) {
		t.Errorf("Reserve past the rest = %v, want ErrBusy", err)
	}
	if _, err := b.Reserve(101); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Reserve past the whole budget = %v, want ErrTooLarge", err)
	}
	r1()
	r1() // a second release must not give the bytes back twice
	r2, err := b.Reserve(100)
	if err != nil {
		t.Fatalf("Reserve after release = %v", err)
	}
	if _, err := b.Reserve(1); !errors.Is(err, ErrBusy) {
		t.Errorf("double release returned bytes twice: Reserve = %v", err)
	}
	reg := prometheus.NewRegistry()
	b.Register(reg)
	if got := gaugeValue(t, reg, "vigil_decode_budget_used_bytes"); got != 100 {
		t.Errorf("vigil_decode_budget_used_bytes = %v, want 100", got)
	}
	r2()
	if b.Used() != 0 {
		t.Errorf("Used = %d after every release", b.Used())
	}

	var none *Budget
	if _, err := none.Reserve(1 << 40); err != nil {
		t.Errorf("nil budget refused: %v", err)
	}
}

func TestSizeFor(t *testing.T) {
	if got := SizeFor(0); got != DefaultSize {
		t.Errorf("SizeFor(no limit) = %d, want DefaultSize", got)
	}
	if got := SizeFor(300 << 20); got != 300<<20 {
		t.Errorf("SizeFor(300 MiB) = %d, want the headroom", got)
	}
}

func TestReservationResize(t *testing.T) {
	b := NewBudget(100)
	r := b.Start()
	steps := []struct {
		to      int64
		wantErr error
		held    int64
	}{
		{40, nil, 40},
		{90, nil, 90},
		{10, nil, 10}, // shrinking gives bytes back
		{101, ErrTooLarge, 10},
	}
	for _, s := range steps {
		if err := r.Resize(s.to); !errors.Is(err, s.wantErr) || r.Held() != s.held {
			t.Errorf("Resize(%d) = %v, held %d; want %v, held %d", s.to, err, r.Held(), s.wantErr, s.held)
		}
	}
	other := b.Start()
	if err := other.Resize(80); err != nil {
		t.Fatal(err)
	}
	if err := r.Resize(30); !errors.Is(err, ErrBusy) || r.Held() != 10 {
		t.Errorf("Resize past what is left = %v, held %d; want ErrBusy, still 10", err, r.Held())
	}
	r.Release()
	r.Release()
	other.Release()
	if err := b.Start().Resize(100); err != nil {
		t.Errorf("after every release the whole budget should be free: %v", err)
	}
}

func TestChargingReader(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		size     int64 // budget
		body     int
		wantErr  error
		readUpTo int64 // at most this much read before the refusal
	}{
		{"fits", 8 * mib, 5 * mib, nil, 5 * mib},
		{"refused once it outgrows the budget", 3 * mib, 10 * mib, ErrTooLarge, 3 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.size)
			res := b.Start()
			defer res.Release()
			var out bytes.Buffer
			n, err := out.ReadFrom(ChargingReader(bytes.NewReader(make([]byte, tt.body)), res, mib))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("read = %v, want %v", err, tt.wantErr)
			}
			if n > tt.readUpTo || res.Held() < n || res.Held() > tt.size {
				t.Errorf("read %d bytes, holding %d of %d; want at most %d read, all of it paid for", n, res.Held(), tt.size, tt.readUpTo)
			}
		})
	}
}

// Packed varints are a byte each on the wire and eight decoded; without
// the schema they look like strings, so the request type names them.
func TestProtoPackedVarints(t *testing.T) {
	const buckets = 100_000
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("latency")
	dp := m.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	counts := make([]uint64, buckets)
	for i := range counts {
		counts[i] = 1
	}
	dp.Positive().BucketCounts().FromRaw(counts)
	dp.Negative().BucketCounts().FromRaw(counts)
	otlp, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	deltas := make([]int64, buckets)
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     []prompb.Label{{Name: "__name__", Value: "h"}},
		Histograms: []prompb.Histogram{{PositiveDeltas: deltas, NegativeDeltas: deltas}},
	}}}
	rw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		body   []byte
		packed PackedVarints
		want   int64
	}{
		{"OTLP exponential histogram", otlp, OTLPMetricsPacked, 2 * buckets},
		{"remote_write native histogram", rw, RemoteWritePacked, 2 * buckets},
		{"without the schema", otlp, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ProtoPacked(tt.body, 64, tt.packed)
			if s.Scalars != tt.want {
				t.Errorf("Scalars = %d, want %d", s.Scalars, tt.want)
			}
			if tt.want > 0 && s.Cost(len(tt.body)) < PerScalar*tt.want {
				t.Errorf("Cost = %d for %d bytes on the wire, below the %d the buckets decode to", s.Cost(len(tt.body)), len(tt.body), PerScalar*tt.want)
			}
		})
	}
}

// gaugeValue returns the value of the gauge named name that reg gathers.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

func TestProtoSchema(t *testing.T) {
	// A message whose field 1 holds itself and whose field 2 is a string.
	node := &Message{}
	node.Fields = []Field{{Num: 1, Message: node}}
	msg := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	nest := func(levels int) []byte {
		b := []byte{}
		for range levels {
			b = field(1, b)
		}
		return b
	}
	// A string that parses as a message three levels deep.
	str := field(2, nest(3))
	tests := []struct {
		name         string
		body         []byte
		wantMessages int64
		wantDepth    int
	}{
		{"empty body", nil, 0, 1},
		{"nested messages", nest(3), 3, 3},
		{"a string is not tried as a message", msg(str, str), 0, 1},
		{"strings inside messages neither", field(1, field(1, str)), 2, 3},
		{"unknown fields skipped", msg(field(7, nest(5)), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1)), 0, 1},
		{"empty messages counted", bytes.Repeat([]byte{0x0a, 0x00}, 1000), 1000, 1},
		{"a message field that does not parse counts as skipped", field(1, []byte{0xff}), 0, 1},
		{"stops past maxDepth", nest(100), 10, 11},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ProtoSchema(tt.body, 10, node)
			if s.Messages != tt.wantMessages || s.Depth != tt.wantDepth || s.Scalars != 0 {
				t.Errorf("shape %+v, want %d messages, depth %d", s, tt.wantMessages, tt.wantDepth)
			}
			// The walk without the schema may only find more.
			if p := Proto(tt.body, 10); p.Messages < s.Messages || p.Depth < s.Depth {
				t.Errorf("schema-less shape %+v below the schema's %+v", p, s)
			}
		})
	}
}
