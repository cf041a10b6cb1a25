package limits

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// opaque hides everything but AppendableV2, as a wrapping store does: the
// limit must not depend on what the wrapped appender implements.
type opaque struct{ storage.AppendableV2 }

func (o opaque) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return struct{ storage.AppenderV2 }{o.AppendableV2.AppenderV2(ctx)}
}

func TestLimitSeries(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	const limit = 5
	app := LimitSeries(opaque{db}, db.Head(), limit)
	now := time.Now().UnixMilli()
	series := func(i int) labels.Labels { return labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)) }

	// One transaction creates series 0..9: the first five are accepted,
	// the rest refused with ErrSeriesLimit and nothing else.
	a := app.AppenderV2(t.Context())
	var refused int
	for i := range 10 {
		_, err := a.Append(0, series(i), 0, now, 1, nil, nil, storage.AOptions{})
		switch {
		case err == nil:
		case errors.Is(err, ErrSeriesLimit):
			refused++
		default:
			t.Fatalf("series %d: %v", i, err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if refused != 5 || db.Head().NumSeries() != limit {
		t.Fatalf("refused %d, head holds %d series; want 5 refused and %d held", refused, db.Head().NumSeries(), limit)
	}

	// At the limit, existing series keep taking samples (with or without
	// a cached reference); new ones are refused.
	a = app.AppenderV2(t.Context())
	for i := range limit {
		if _, err := a.Append(0, series(i), 0, now+1000, 2, nil, nil, storage.AOptions{}); err != nil {
			t.Errorf("existing series %d refused at the limit: %v", i, err)
		}
	}
	if _, err := a.Append(0, series(99), 0, now+1000, 2, nil, nil, storage.AOptions{}); !errors.Is(err, ErrSeriesLimit) {
		t.Errorf("new series at the limit: err = %v, want ErrSeriesLimit", err)
	}
	// A reference the head does not know (a cached one whose series was
	// dropped) does not let a new series past the limit.
	if _, err := a.Append(1<<40, series(98), 0, now+1000, 2, nil, nil, storage.AOptions{}); !errors.Is(err, ErrSeriesLimit) {
		t.Errorf("new series with a stale reference at the limit: err = %v, want ErrSeriesLimit", err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	q, err := db.Querier(now-1, now+2000)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	var got, samples int
	for ss.Next() {
		got++
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			samples++
		}
	}
	if got != limit || samples != 2*limit {
		t.Errorf("stored %d series with %d samples, want %d with %d", got, samples, limit, 2*limit)
	}

	if LimitSeries(db, db.Head(), 0) != storage.AppendableV2(db) {
		t.Error("a zero limit must leave the appendable unwrapped")
	}
}
