package embedded

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
)

func TestDiskReserveBounds(t *testing.T) {
	got := DiskReserve(t.TempDir())
	if got < minDiskReserve || got > maxDiskReserve {
		t.Errorf("DiskReserve = %d, want within [%d, %d]", got, minDiskReserve, maxDiskReserve)
	}
	if got := DiskReserve("/does/not/exist"); got != minDiskReserve {
		t.Errorf("DiskReserve of a missing dir = %d, want %d", got, minDiskReserve)
	}
}

// TestSpanLogRefusesBelowDiskReserve pins what a write on an (as far as the
// store knows) full disk does: it is refused as retryable, nothing of it is
// stored, the refusal is counted, and reads go on working.
func TestSpanLogRefusesBelowDiskReserve(t *testing.T) {
	dir := t.TempDir()
	at := time.Now().Add(-time.Minute)
	s := openTestStore(t, dir)
	id := pcommon.TraceID{1, 2, 3}
	if err := s.WriteTraces(t.Context(), oneSpan(id, at, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	full, err := OpenSpanLogStore(t.Context(), SpanLogOptions{Dir: dir, MemoryLimit: "256MB", Threads: 1, DiskReserve: math.MaxInt64, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = full.Close() })
	refused := pcommon.TraceID{4, 5, 6}
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(at))
	for name, err := range map[string]error{
		"WriteTraces": full.WriteTraces(t.Context(), oneSpan(refused, at, nil)),
		"WriteLogs":   full.WriteLogs(t.Context(), ld),
	} {
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s below the reserve: %v, want ErrDiskFull and storage.ErrUnavailable", name, err)
		}
	}
	if _, err := full.GetTrace(t.Context(), refused); !errors.Is(err, storage.ErrTraceNotFound) {
		t.Errorf("refused trace: %v, want ErrTraceNotFound", err)
	}
	if _, err := full.GetTrace(t.Context(), id); err != nil {
		t.Errorf("trace written before: %v", err)
	}
	if got := testutil.ToFloat64(full.guard.failures.WithLabelValues("disk_full")); got != 2 {
		t.Errorf("vigil_storage_write_failures_total{reason=\"disk_full\"} = %v, want 2", got)
	}
}

func TestGuardedMetricsRefusesBelowDiskReserve(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenMetrics(MetricsOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	series := labels.FromStrings("__name__", "guarded")
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		reserve int64
		wantErr bool
	}{{-1, false}, {math.MaxInt64, true}} {
		g, err := GuardMetrics(db, GuardMetricsOptions{Dir: dir, Reserve: tc.reserve, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		app := g.AppenderV2(t.Context())
		if _, err := app.Append(0, series, 0, now, 1, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		now++
		err = app.Commit()
		if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrDiskFull)) {
			t.Errorf("reserve %d: Commit = %v, want error %v", tc.reserve, err, tc.wantErr)
		}
	}
	// Only the sample committed with room on disk is stored.
	q, err := db.Querier(0, now+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "guarded"))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d samples stored, want 1", n)
	}
}
