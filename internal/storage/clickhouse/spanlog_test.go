package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/clickhouse/chtest"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

var testDBSeq atomic.Int64

// openSpanLogs connects to a fresh database on srv (through the cluster's
// Distributed tables when cluster is set) and opens the store there.
func openSpanLogs(t testing.TB, srv *chtest.Server, cluster string, opts SpanLogOptions) (*SpanLogStore, *Client) {
	t.Helper()
	db := fmt.Sprintf("sl%d", testDBSeq.Add(1))
	c, err := Connect(context.Background(), Options{DSN: srv.DSN(db), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := OpenSpanLogs(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

// conformanceOptions accept what the suite writes: timestamps
// storagetest.FutureSkew ahead.
var conformanceOptions = SpanLogOptions{MaxFutureSkew: 72 * time.Hour}

func TestSpanLogConformance(t *testing.T) {
	srv := chtest.Start(t)
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		s, _ := openSpanLogs(t, srv, "", conformanceOptions)
		return s
	})
}

// Queries take another form where skip indexes exist (term search as LIKE
// on the token-indexed expression). 18.16 runs LIKE too, without the
// index, so the suite checks those queries here with the tables 18.16
// can create.
func TestSpanLogConformanceIndexedQueries(t *testing.T) {
	srv := chtest.Start(t)
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		s, c := openSpanLogs(t, srv, "", conformanceOptions)
		c.Features.SkipIndexes = true
		return s
	})
}

// The same suite over two shards behind Distributed tables: traces are
// sharded by id, so every query has to gather from both.
func TestSpanLogConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster suite in -short mode")
	}
	cl := chtest.StartCluster(t, 2)
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		s, _ := openSpanLogs(t, cl[0], chtest.ClusterName, conformanceOptions)
		return s
	})
}

// A restart of ClickHouse loses no acknowledged write; while it is down
// writes fail with ErrUnavailable (so receivers answer 503 and clients
// retry), and once it is back the same store writes again.
func TestSpanLogRestart(t *testing.T) {
	srv := chtest.Start(t)
	s, _ := openSpanLogs(t, srv, "", SpanLogOptions{})
	ctx := t.Context()
	base := storagetest.Base(time.Now())
	rich := storagetest.LoadTraces(t, "traces_rich.json", base)
	splitA := storagetest.LoadTraces(t, "traces_split_a.json", base)
	splitB := storagetest.LoadTraces(t, "traces_split_b.json", base)
	logs := storagetest.LoadLogs(t, "logs.json", base)
	if err := s.WriteTraces(ctx, rich); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if _, err := s.GetTrace(ctx, storagetest.RichTraceID); err != nil {
		t.Fatalf("acknowledged trace after a restart: %v", err)
	}
	if err := s.WriteTraces(ctx, splitA); err != nil {
		t.Fatalf("write after a restart: %v", err)
	}

	srv.Stop()
	if err := s.WriteTraces(ctx, splitB); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("WriteTraces with the server down = %v, want ErrUnavailable", err)
	}
	if err := s.WriteLogs(ctx, logs); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("WriteLogs with the server down = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetTrace(ctx, storagetest.RichTraceID); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("GetTrace with the server down = %v, want ErrUnavailable", err)
	}

	srv.Restart()
	// The client retries what failed; the store needs no reopening.
	if err := s.WriteTraces(ctx, splitB); err != nil {
		t.Fatalf("write once the server is back: %v", err)
	}
	got, err := s.GetTrace(ctx, storagetest.SplitTraceID)
	if err != nil {
		t.Fatal(err)
	}
	want := ptrace.NewTraces()
	splitA.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
	splitB.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
	if got.SpanCount() != want.SpanCount() {
		t.Errorf("split trace has %d spans after the outage, want %d", got.SpanCount(), want.SpanCount())
	}
	n := 0
	for _, err := range s.FindLogs(ctx, storage.LogQuery{Limit: 1000}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := logs.LogRecordCount(); n != want {
		t.Errorf("%d logs after restarts, want %d (acknowledged once)", n, want)
	}
}

// Opening the store again on a database that has its tables changes
// nothing and loses nothing, on one server and on every shard.
func TestSpanLogSchemaIdempotent(t *testing.T) {
	cl := chtest.StartCluster(t, 2)
	s, c := openSpanLogs(t, cl[0], chtest.ClusterName, SpanLogOptions{})
	ctx := t.Context()
	base := storagetest.Base(time.Now())
	if err := s.WriteTraces(ctx, storagetest.LoadTraces(t, "traces_rich.json", base)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s2, err := OpenSpanLogs(ctx, c, SpanLogOptions{})
		if err != nil {
			t.Fatalf("reopen on existing tables: %v", err)
		}
		if _, err := s2.GetTrace(ctx, storagetest.RichTraceID); err != nil {
			t.Fatalf("trace through a second store: %v", err)
		}
		s2.Close()
	}
	// Both shards hold a local table of each kind, and a Distributed one.
	for _, srv := range cl {
		sc, err := Connect(ctx, Options{DSN: srv.DSN(c.Database)})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := sc.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", c.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		sc.Close()
		if n != 2*uint64(len(spanLogTables)) {
			t.Errorf("shard %s has %d tables, want %d", srv.TCPAddr, n, 2*len(spanLogTables))
		}
	}
}

// DropBefore drops whole old days of every table on every shard, and
// leaves the newer days alone.
func TestSpanLogDropBeforeCluster(t *testing.T) {
	cl := chtest.StartCluster(t, 2)
	s, c := openSpanLogs(t, cl[0], chtest.ClusterName, SpanLogOptions{})
	ctx := t.Context()
	now := time.Now().UTC()
	old := now.Add(-3 * 24 * time.Hour)
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	// Enough trace ids that both shards get old and new rows.
	for i := range 32 {
		for _, at := range []time.Time{old, now} {
			sp := spans.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{byte(i), 15: byte(at.Day())})
			sp.SetSpanID(pcommon.SpanID{1})
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
		}
	}
	if err := s.WriteTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	oldDay := old.Format("20060102")
	partsOf := func(srv *chtest.Server) (oldParts, all uint64) {
		sc, err := Connect(ctx, Options{DSN: srv.DSN(c.Database)})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if err := sc.Conn.QueryRow(ctx, "SELECT countIf(partition_id = ?), count() FROM system.parts WHERE active AND database = ?",
			oldDay, c.Database).Scan(&oldParts, &all); err != nil {
			t.Fatal(err)
		}
		return oldParts, all
	}
	for _, srv := range cl {
		if o, _ := partsOf(srv); o == 0 {
			t.Fatalf("shard %s has no part of the old day before DropBefore", srv.TCPAddr)
		}
	}
	n, err := s.DropBefore(ctx, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("DropBefore dropped %d days, want 1", n)
	}
	for _, srv := range cl {
		if o, all := partsOf(srv); o != 0 || all == 0 {
			t.Errorf("shard %s after DropBefore: %d old parts (want 0), %d in all (want some)", srv.TCPAddr, o, all)
		}
	}
	if _, err := s.GetTrace(ctx, pcommon.TraceID{3, 15: byte(now.Day())}); err != nil {
		t.Errorf("recent trace after DropBefore: %v", err)
	}
	if n, err := s.DropBefore(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second DropBefore = %d, %v; want 0, nil", n, err)
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name        string
		ctx         context.Context
		err         error
		unavailable bool
	}{
		{"connection refused", ctx, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"eof", ctx, io.EOF, true},
		{"too many parts", ctx, &clickhouse.Exception{Code: 252, Message: "Too many parts"}, true},
		{"memory limit", ctx, &clickhouse.Exception{Code: 241}, true},
		{"syntax error", ctx, &clickhouse.Exception{Code: 62}, false},
		{"unknown table", ctx, &clickhouse.Exception{Code: 60}, false},
		{"driver conversion", ctx, errors.New("converting UInt8 to *int64 is unsupported"), false},
		{"caller cancelled", cancelled, context.Canceled, false},
		{"driver timeout", ctx, context.DeadlineExceeded, true},
	} {
		err := classify(tc.ctx, "op", tc.err)
		if got := errors.Is(err, storage.ErrUnavailable); got != tc.unavailable {
			t.Errorf("%s: classify = %v, unavailable %v, want %v", tc.name, err, got, tc.unavailable)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v does not wrap the cause", tc.name, err)
		}
	}
}

// The schema is one definition: the server's features switch on
// LowCardinality, codecs, TTL and skip indexes; 18.16 gets none of them.
func TestSpanLogDDLFeatures(t *testing.T) {
	old := &Client{Database: "v", Features: featuresOf("18.16.1")}
	modern := &Client{Database: "v", Cluster: "c", Features: featuresOf("24.8.4.13")}
	o, m := logsTable.localDDL(old, 72*time.Hour), logsTable.localDDL(modern, 72*time.Hour)
	for _, s := range []string{"LowCardinality", "CODEC", "TTL", "INDEX"} {
		if strings.Contains(o, s) {
			t.Errorf("18.16 DDL has %s:\n%s", s, o)
		}
		if !strings.Contains(m, s) {
			t.Errorf("modern DDL lacks %s:\n%s", s, m)
		}
	}
	for _, s := range []string{"CREATE TABLE IF NOT EXISTS v.logs_local", "service LowCardinality(String)", "ts_ns Int64 CODEC(Delta, ZSTD(1))",
		"body String CODEC(ZSTD(1))", "TTL date + toIntervalDay(3)", "tokenbf_v1", "PARTITION BY date", "ORDER BY (service, ts_ns)"} {
		if !strings.Contains(m, s) {
			t.Errorf("modern DDL lacks %q:\n%s", s, m)
		}
	}
	if d := spansTable.distributedDDL(modern); d != "CREATE TABLE IF NOT EXISTS v.spans AS v.spans_local ENGINE = Distributed(c, v, spans_local, cityHash64(trace_hi, trace_lo))" {
		t.Errorf("distributed DDL = %s", d)
	}
}

// In a cluster an insert is acknowledged only once every shard it touches
// took its rows: with a shard down the write fails as unavailable, and
// succeeds again once the shard is back.
func TestSpanLogShardDown(t *testing.T) {
	cl := chtest.StartCluster(t, 2)
	s, _ := openSpanLogs(t, cl[0], chtest.ClusterName, SpanLogOptions{})
	ctx := t.Context()
	gen := storagetest.NewSpanGen(7, time.Now().Add(-time.Minute))
	if err := s.WriteTraces(ctx, gen.Traces(200)); err != nil {
		t.Fatal(err)
	}
	cl[1].Stop()
	td := gen.Traces(200) // many trace ids: some hash to the stopped shard
	err := s.WriteTraces(ctx, td)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("WriteTraces with a shard down = %v, want ErrUnavailable", err)
	}
	cl[1].Restart()
	if err := s.WriteTraces(ctx, td); err != nil {
		t.Fatalf("retry once the shard is back: %v", err)
	}
	id := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	want := 0
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if sp.TraceID() == id {
					want++
				}
			}
		}
	}
	got, err := s.GetTrace(ctx, id)
	if err != nil {
		t.Fatalf("retried trace: %v", err)
	}
	// The first attempt may have stored the other shard's rows already;
	// they are read once.
	if got.SpanCount() != want {
		t.Errorf("retried trace has %d spans, want %d", got.SpanCount(), want)
	}
}

// Writers keep ingesting while ClickHouse is killed and restarted: every
// write that returned nil is readable afterwards, and every other one
// failed as unavailable.
func TestSpanLogRestartDuringIngest(t *testing.T) {
	srv := chtest.Start(t)
	s, _ := openSpanLogs(t, srv, "", SpanLogOptions{})
	ctx := t.Context()
	gen := storagetest.NewSpanGen(11, time.Now().Add(-time.Minute))
	type result struct {
		id  pcommon.TraceID
		err error
	}
	var batches []ptrace.Traces
	for range 60 {
		batches = append(batches, gen.Traces(100))
	}
	results := make(chan result, len(batches))
	go func() {
		for _, td := range batches {
			id := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
			results <- result{id, s.WriteTraces(ctx, td)}
			time.Sleep(20 * time.Millisecond)
		}
		close(results)
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	acked, failed := 0, 0
	var ids []pcommon.TraceID
	for r := range results {
		switch {
		case r.err == nil:
			acked++
			ids = append(ids, r.id)
		case errors.Is(r.err, storage.ErrUnavailable):
			failed++
		default:
			t.Errorf("write failed, but not as unavailable: %v", r.err)
		}
	}
	t.Logf("%d writes acknowledged, %d unavailable", acked, failed)
	if acked == 0 {
		t.Fatal("no write succeeded")
	}
	for _, id := range ids {
		if _, err := s.GetTrace(ctx, id); err != nil {
			t.Errorf("acknowledged trace %s after the restart: %v", id, err)
		}
	}
}
