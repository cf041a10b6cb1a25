package promremote

import (
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// FuzzRemoteWrite feeds arbitrary bodies to the handler over a real TSDB.
// With wrap set the input is snappy-compressed first, so that the fuzzer
// reaches the protobuf decoder and the append path rather than stopping at
// snappy. Whatever arrives, the handler must not panic and must answer 204,
// 400 or 413: a 503 would tell the sender to retry a request that can never
// succeed, a 500 would be a bug.
func FuzzRemoteWrite(f *testing.F) {
	now := time.Now().UnixMilli()
	h := nativeHistogram()
	h.Timestamp = now
	valid, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{
			Labels:    series("fuzz_total", "job", "f"),
			Samples:   []prompb.Sample{{Timestamp: now, Value: 1}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "x"}}, Value: 1, Timestamp: now}},
		},
		{Labels: series("fuzz_hist"), Histograms: []prompb.Histogram{h}},
	}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, true)
	f.Add(snappy.Encode(nil, valid), false)
	f.Add(append(binary.AppendUvarint(nil, 0xfffffff0), 0, 1, 2), false)
	f.Add([]byte{}, false)
	f.Add([]byte{}, true)
	f.Add([]byte("\x0a\x02\x0a\x00"), true)

	db := storagetest.OpenTSDB(f, storagetest.TSDBOptions{LikeEmbedded: true})
	handler := NewHandler(Options{Appendable: db, Limits: limits.Limits{MaxRequestBytes: 64 << 10}})

	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		body := data
		if wrap {
			body = snappy.Encode(nil, data)
		}
		w := post(handler, body, nil)
		switch w.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d (%s) for %d-byte body (wrap %v)", w.Code, w.Body, len(data), wrap)
		}
	})
}
