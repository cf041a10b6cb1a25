// Package changes derives deploy change events from the stored metrics:
// a `*_build_info` series whose `version` label changes for one job and
// instance is a deploy.
//
// Deploys are derived when asked for, from the TSDB, rather than recorded
// by a poller: nothing is written (the configuration centre's replicated
// log never sees a deploy), every node of a cluster sharing one store
// answers alike, and a restart forgets nothing that the TSDB keeps.
package changes

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-observability/vigil/internal/configcentre"
)

// Lookback is how far before a range's start Deploys looks for the
// version a target ran when the range began: a target whose previous
// sample is older than this starts the range without a known version,
// and its first version in the range is not a deploy.
const Lookback = 10 * time.Minute

// MaxSeries bounds the build_info series one call reads; a fleet with
// more is answered with an error rather than a partial list.
const MaxSeries = 100_000

// target is one job and instance of one build_info metric.
type target struct{ metric, job, instance string }

type point struct {
	t       int64
	version string
}

// Deploys returns the deploys with start <= Time <= end, oldest first:
// each time a `*_build_info` series of a job and instance shows another
// `version` than the one it last showed. Service is the job (the
// `service_name` or `service` label when there is no job), From and To
// the versions, Author the metric.
func Deploys(ctx context.Context, q storage.Queryable, start, end time.Time) ([]configcentre.Change, error) {
	qr, err := q.Querier(start.Add(-Lookback).UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil,
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+_build_info"),
		labels.MustNewMatcher(labels.MatchNotEqual, "version", ""))
	points := map[target][]point{}
	var it chunkenc.Iterator
	n := 0
	for ss.Next() {
		if n++; n > MaxSeries {
			return nil, fmt.Errorf("changes: more than %d build_info series", MaxSeries)
		}
		ls := ss.At().Labels()
		job := cmp.Or(ls.Get("job"), ls.Get("service_name"), ls.Get("service"))
		k := target{metric: ls.Get(model.MetricNameLabel), job: job, instance: ls.Get("instance")}
		ver := ls.Get("version")
		it = ss.At().Iterator(it)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			if typ != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if value.IsStaleNaN(v) {
				continue
			}
			points[k] = append(points[k], point{t, ver})
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
	}
	if err := ss.Err(); err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	from, to := start.UnixMilli(), end.UnixMilli()
	var out []configcentre.Change
	for k, ps := range points {
		// Ordered by time, with the version as a tie-break so the answer
		// does not depend on map order. Several versions at one time (two
		// series of one target both fresh, as while a pushed series of
		// the old version lingers) keep the current one: the target moves
		// on once its current version is no longer among them, so they do
		// not read as a deploy back and forth at every sample.
		slices.SortFunc(ps, func(a, b point) int {
			return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.version, b.version))
		})
		current := ""
		for i := 0; i < len(ps); {
			j, stays := i, false
			for ; j < len(ps) && ps[j].t == ps[i].t; j++ {
				stays = stays || ps[j].version == current
			}
			t, next := ps[i].t, ps[j-1].version
			i = j
			if stays {
				continue
			}
			if current != "" && t >= from && t <= to {
				out = append(out, configcentre.Change{
					Time: time.UnixMilli(t).UTC(), Kind: configcentre.KindDeploy, Action: configcentre.KindDeploy,
					Service: k.job, Instance: k.instance, From: current, To: next, Author: k.metric,
				})
			}
			current = next
		}
	}
	slices.SortFunc(out, func(a, b configcentre.Change) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Service, b.Service), strings.Compare(a.Instance, b.Instance))
	})
	return out, nil
}

// Merge returns config and deploys in one list, oldest first (config
// events keep their order among themselves).
func Merge(config, deploys []configcentre.Change) []configcentre.Change {
	out := make([]configcentre.Change, 0, len(config)+len(deploys))
	out = append(out, config...)
	out = append(out, deploys...)
	slices.SortStableFunc(out, func(a, b configcentre.Change) int { return a.Time.Compare(b.Time) })
	return out
}
