package lokiapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
	"github.com/vigil-observability/vigil/internal/storage/memory"
)

// TestGrafanaCallsOnEveryStore writes the fixture into each storage
// backend, a real DuckDB and a real clickhouse-server included, and
// checks that every Grafana call answers exactly as over the reference
// store of the golden tests: the Loki API means the same on all of them.
func TestGrafanaCallsOnEveryStore(t *testing.T) {
	// Recent enough for every store's retention, whole minutes so that
	// steps line up alike.
	base := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	recs := fixture(base)
	want := newServer(t, newFakeStore(recs...), base)
	stores := map[string]func(t *testing.T) storage.SpanLogStore{
		"memory": func(*testing.T) storage.SpanLogStore { return memory.New() },
		"embedded": func(t *testing.T) storage.SpanLogStore {
			s, err := embedded.OpenSpanLogStore(context.Background(), embedded.SpanLogOptions{Dir: t.TempDir(), MemoryLimit: "256MB", Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		"clickhouse": func(t *testing.T) storage.SpanLogStore {
			srv := chtest.Start(t)
			c, err := clickhouse.Connect(context.Background(), clickhouse.Options{DSN: srv.DSN("lokiapi")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			s, err := clickhouse.OpenSpanLogs(context.Background(), c, clickhouse.SpanLogOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
	for _, name := range sortedKeys(stores) {
		t.Run(name, func(t *testing.T) {
			store := stores[name](t)
			if err := store.WriteLogs(t.Context(), toOTLP(recs)); err != nil {
				t.Fatal(err)
			}
			counter, ok := store.(storage.LogCounter)
			if !ok {
				t.Fatalf("%s does not count logs where they are stored", name)
			}
			counted := &countingStore{SpanLogStore: store, counter: counter}
			got := newServer(t, counted, base)
			for _, c := range grafanaCalls(base) {
				t.Run(c.name, func(t *testing.T) {
					w, g := canonical(t, c.do(t, want)), canonical(t, c.do(t, got))
					if !bytes.Equal(w, g) {
						t.Errorf("%s answers\n%s\nthe reference store answers\n%s", name, g, w)
					}
				})
			}
			// The log volume and the other sums were counted in the store,
			// not read line by line: the answers above compared both ways.
			if counted.calls.Load() < 3 {
				t.Errorf("%s counted %d times; the log volume queries should be counted in the store", name, counted.calls.Load())
			}
		})
	}
}

// countingStore counts the calls of CountLogs.
type countingStore struct {
	storage.SpanLogStore
	counter storage.LogCounter
	calls   atomic.Int64
}

func (c *countingStore) CountLogs(ctx context.Context, q storage.LogCountQuery) ([]storage.LogCount, error) {
	c.calls.Add(1)
	return c.counter.CountLogs(ctx, q)
}

// canonical re-encodes a JSON answer with sorted keys, so that two
// answers compare by content.
func canonical(t *testing.T, body []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// toOTLP writes records as OTLP logs, one resource each, as an agent
// would send them.
func toOTLP(recs []storage.LogRecord) plog.Logs {
	ld := plog.NewLogs()
	for _, r := range recs {
		rl := ld.ResourceLogs().AppendEmpty()
		if err := rl.Resource().Attributes().FromRaw(r.ResourceAttributes); err != nil {
			panic(fmt.Sprint("resource: ", err))
		}
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(r.Timestamp))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(r.Timestamp))
		lr.SetSeverityNumber(r.SeverityNumber)
		lr.Body().SetStr(r.Body)
		lr.SetTraceID(r.TraceID)
		if r.Attributes != nil {
			if err := lr.Attributes().FromRaw(r.Attributes); err != nil {
				panic(fmt.Sprint("attributes: ", err))
			}
		}
	}
	return ld
}
