package decodecost

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// referenceShape is protoShape as first written, on protowire alone: the
// inline tag and length decoding must find the same shape.
func referenceShape(b []byte, depth, maxDepth int, packed PackedVarints, path []protowire.Number) (Shape, bool) {
	s := Shape{Depth: depth}
	if depth > maxDepth {
		return s, true
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return s, false
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return s, false
			}
			b = b[m:]
			sub := append(path, num)
			if packed != nil && slices.ContainsFunc(packed, func(q []protowire.Number) bool { return slices.Equal(q, sub) }) {
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
			if inner, ok := referenceShape(v, depth+1, maxDepth, packed, sub); ok || inner.Depth > maxDepth {
				s.Messages += 1 + inner.Messages
				s.Scalars += inner.Scalars
				s.Depth = max(s.Depth, inner.Depth)
				if s.Depth > maxDepth {
					return s, true
				}
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return s, false
		}
		b = b[m:]
	}
	return s, true
}

// remoteWriteBody is a remote_write request of n series with one sample.
func remoteWriteBody(tb testing.TB, n int) []byte {
	req := prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: "200"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250)}, {Name: "job", Value: "api"},
				{Name: "route", Value: fmt.Sprintf("/api/v1/resource%d", i%15)},
			},
			Samples: []prompb.Sample{{Timestamp: 1_700_000_000_000, Value: float64(i)}},
		})
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzProtoShapeMatchesReference(f *testing.F) {
	f.Add(remoteWriteBody(f, 3))
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x0a, 0x80, 0x01})
	f.Add([]byte{0x02, 0x01, 0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, maxDepth := range []int{3, 64} {
			want, _ := referenceShape(b, 1, maxDepth, RemoteWritePacked, nil)
			if got := ProtoPacked(b, maxDepth, RemoteWritePacked); got != want {
				t.Fatalf("maxDepth %d: shape %+v, want %+v", maxDepth, got, want)
			}
			// The same bytes as a series (field 1 of the request), as
			// the remote_write decoder walks one it hands to prompb.
			want, _ = referenceShape(b, 2, maxDepth, RemoteWritePacked, []protowire.Number{1})
			if got := ProtoPackedAt(b, []protowire.Number{1}, maxDepth, RemoteWritePacked); got != want {
				t.Fatalf("maxDepth %d, at [1]: shape %+v, want %+v", maxDepth, got, want)
			}
			if want.Depth <= maxDepth && want.Cost(len(b)) > MaxCost(len(b)) {
				t.Fatalf("cost %d above MaxCost %d for %d bytes", want.Cost(len(b)), MaxCost(len(b)), len(b))
			}
		}
	})
}

// BenchmarkProtoPackedRemoteWrite walks a 2000-series remote_write body,
// as the remote_write handler does before decoding each request.
func BenchmarkProtoPackedRemoteWrite(b *testing.B) {
	body := remoteWriteBody(b, 2000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ProtoPacked(body, 64, RemoteWritePacked)
	}
}
