package lokipush

import (
	"fmt"
	"testing"
)

// BenchmarkDecodeProto decodes a Promtail-like batch: 10 streams of 100
// entries of about 120 bytes, some with structured metadata.
func BenchmarkDecodeProto(b *testing.B) {
	var streams []pbStream
	for s := range 10 {
		st := pbStream{labels: fmt.Sprintf(`{job="varlogs", host="node-%d", filename="/var/log/app-%d.log"}`, s, s)}
		for i := range 100 {
			e := pbEntry{sec: t0, nsec: int64(i), line: fmt.Sprintf(`level=info ts=2026-01-02T03:04:05Z caller=server.go:%d msg="request served" path=/api/v1/items status=200`, i)}
			if i%4 == 0 {
				e.metadata = []Label{{"trace_id", "0af7651916cd43dd8448eb211c80319c"}}
			}
			st.entries = append(st.entries, e)
		}
		streams = append(streams, st)
	}
	body := snappyPush(streams...)
	d := testDecoder(Options{})
	b.SetBytes(int64(len(pbPush(streams...))))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := d.Decode(body, "application/x-protobuf")
		if err != nil || res.Entries != 1000 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(`{"streams":[{"stream":{"app":"web"},"values":[`)
	for i := range 1000 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `["17673230450000%05d","{\"level\":\"info\",\"msg\":\"request served\",\"status\":200,\"i\":%d}"]`, i, i)
	}
	body = append(body, `]}]}`...)
	d := testDecoder(Options{})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := d.Decode(body, "application/json")
		if err != nil || res.Entries != 1000 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkDecodeProtoMetadata decodes what bench/cmd/vigil-load sends:
// one stream of 500 entries, each with four structured metadata pairs.
func BenchmarkDecodeProtoMetadata(b *testing.B) {
	st := pbStream{labels: `{host_name="node-7", service_name="checkout"}`}
	for i := range 500 {
		st.entries = append(st.entries, pbEntry{sec: t0, nsec: int64(i), line: fmt.Sprintf("order %d placed", i),
			metadata: []Label{{"level", "info"}, {"code_function", "handleOrder"}, {"order_items", "3"}, {"customer_id", fmt.Sprintf("c-%05d", i)}}})
	}
	body := snappyPush(st)
	d := testDecoder(Options{})
	b.SetBytes(int64(len(pbPush(st))))
	b.ReportAllocs()
	for b.Loop() {
		res, err := d.Decode(body, "application/x-protobuf")
		if err != nil || res.Entries != 500 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(500*b.N)/b.Elapsed().Seconds(), "lines/s")
}
