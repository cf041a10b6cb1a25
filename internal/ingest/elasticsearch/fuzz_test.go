package elasticsearch

import (
	"strings"
	"testing"
	"time"
)

// Whatever the body, parsing and mapping neither panic nor keep an item
// both refused and mapped.
func FuzzBulk(f *testing.F) {
	f.Add("{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"x\",\"log\":{\"level\":\"info\"}}\n")
	f.Add("{\"create\":{}}\n{\"@timestamp\":1765016130123,\"trace.id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}\n{\"delete\":{\"_index\":\"a\"}}\n")
	f.Add("{\"index\":{}}\n{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}\n")
	f.Add("{\"update\":{}}\n{}\n")
	f.Fuzz(func(t *testing.T, body string) {
		items, err := ParseBulk([]byte(body), ParseOptions{DefaultIndex: "d", MaxDocumentBytes: 1 << 10})
		if err != nil {
			return
		}
		docs := make([]Document, len(items))
		for i := range items {
			if items[i].Err == nil {
				var ierr *ItemError
				docs[i], ierr = MapDocument(items[i].Source)
				if ierr != nil {
					items[i].Err = ierr
				}
			}
		}
		ld := ToLogs(items, docs, time.Unix(0, 0))
		ok := 0
		for _, it := range items {
			if it.Err == nil {
				ok++
			}
		}
		if ld.LogRecordCount() != ok {
			t.Fatalf("%d records for %d accepted items", ld.LogRecordCount(), ok)
		}
	})
}

// BenchmarkBulk measures parsing and mapping a bulk of 500 ECS documents
// as Filebeat sends them.
func BenchmarkBulk(b *testing.B) {
	var sb strings.Builder
	for i := range 500 {
		sb.WriteString(`{"create":{"_index":"filebeat-8.15.0"}}` + "\n")
		sb.WriteString(`{"@timestamp":"2026-12-06T10:15:30.123Z","message":"GET /api/orders/` + strings.Repeat("7", i%5+1) +
			` 200 12ms","log":{"level":"info","logger":"http"},"service":{"name":"orders"},"host":{"name":"web-3"},"trace":{"id":"4bf92f3577b34da6a3ce929d0e0e4736"},"http":{"response":{"status_code":200}},"agent":{"type":"filebeat","version":"8.15.0"}}` + "\n")
	}
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := ParseBulk(body, ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		docs := make([]Document, len(items))
		for i := range items {
			docs[i], _ = MapDocument(items[i].Source)
		}
		_ = ToLogs(items, docs, time.Unix(0, 0))
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "docs/s")
}
