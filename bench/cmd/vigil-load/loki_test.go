package main

import (
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/ingest/lokipush"
	"github.com/vigil-observability/vigil/internal/loadgen"
)

// The push body must be what a Loki server reads: vigil's own decoder of
// Loki pushes gets every record back, its line, time and metadata, in one
// stream labelled with the resource.
func TestLokiPushBodyDecodes(t *testing.T) {
	now := time.Unix(1_800_000_000, 123_456_789)
	ld := loadgen.New(1).Logs(50, now, nil)
	res, err := lokipush.NewDecoder(lokipush.Options{}).Decode(lokiPushBody(ld), "application/x-protobuf")
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if res.Entries != 50 || len(res.Streams) != 1 {
		t.Fatalf("entries %d in %d streams, want 50 in 1", res.Entries, len(res.Streams))
	}
	rl := ld.ResourceLogs().At(0)
	svc, _ := rl.Resource().Attributes().Get("service.name")
	s := res.Streams[0]
	want := []lokipush.Label{{Name: "host_name", Value: "node-7"}, {Name: "service_name", Value: svc.Str()}}
	if len(s.Labels) != len(want) || s.Labels[0] != want[0] || s.Labels[1] != want[1] {
		t.Fatalf("labels %v, want %v", s.Labels, want)
	}
	recs := rl.ScopeLogs().At(0).LogRecords()
	for i, e := range s.Entries {
		r := recs.At(i)
		if e.Line != r.Body().Str() || !e.Time.Equal(r.Timestamp().AsTime()) {
			t.Fatalf("entry %d: %q at %v, want %q at %v", i, e.Line, e.Time, r.Body().Str(), r.Timestamp().AsTime())
		}
		meta := map[string]string{}
		for _, m := range e.Metadata {
			meta[m.Name] = m.Value
		}
		cust, _ := r.Attributes().Get("customer.id")
		if meta["customer_id"] != cust.Str() || meta["code_function"] != "handleOrder" || meta["level"] == "" {
			t.Fatalf("entry %d metadata %v", i, meta)
		}
	}
}
