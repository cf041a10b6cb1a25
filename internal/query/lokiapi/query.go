package lokiapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/logql"
)

const (
	// defaultLimit is a log query's entry limit when none is given, and
	// maxLimit the largest accepted: Loki's max_entries_limit_per_query.
	defaultLimit = 100
	maxLimit     = 5000
)

// errLogInstant is Loki's answer to a log query sent as an instant query.
var errLogInstant = errors.New("log queries are not supported as an instant query type, please change your query to a range query type")

func (h *handler) queryRange(w http.ResponseWriter, r *http.Request) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return
	}
	p := logql.Params{Query: first(v, "query"), Start: start, End: end}
	var err error
	if p.Step, err = stepParam(first(v, "step"), start, end); err != nil {
		h.fail(w, r, bad(err))
		return
	}
	if err := logParams(v, &p); err != nil {
		h.fail(w, r, bad(err))
		return
	}
	h.run(w, r, p, false)
}

func (h *handler) query(w http.ResponseWriter, r *http.Request) {
	v, err := form(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ts := h.now()
	if s := first(v, "time"); s != "" {
		if ts, err = parseTime(s); err != nil {
			h.fail(w, r, bad(fmt.Errorf("time: %w", err)))
			return
		}
	}
	p := logql.Params{Query: first(v, "query"), Start: ts, End: ts}
	if err := logParams(v, &p); err != nil {
		h.fail(w, r, bad(err))
		return
	}
	h.run(w, r, p, true)
}

// logParams reads limit and direction.
func logParams(v map[string][]string, p *logql.Params) error {
	limit, err := intParam(v, "limit", defaultLimit)
	if err != nil {
		return err
	}
	if limit > maxLimit {
		return fmt.Errorf("max entries limit per query exceeded, limit > max_entries_limit (%d > %d)", limit, maxLimit)
	}
	p.Limit = limit
	switch d := strings.ToLower(first(v, "direction")); d {
	// Grafana's "scan" reads the range in pieces, newest first.
	case "", "backward", "scan":
		p.Direction = logql.Backward
	case "forward":
		p.Direction = logql.Forward
	default:
		return fmt.Errorf("direction: %q is neither forward nor backward", d)
	}
	return nil
}

// stepParam reads a range query's step; without one it is Loki's
// default, the range over 250, at least a second.
func stepParam(s string, start, end time.Time) (time.Duration, error) {
	if s == "" {
		return time.Duration(math.Max(math.Floor(end.Sub(start).Seconds()/250), 1)) * time.Second, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("step: %w", err)
	}
	if d <= 0 {
		return 0, errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	return d, nil
}

// run evaluates p and answers with its result.
func (h *handler) run(w http.ResponseWriter, r *http.Request, p logql.Params, instant bool) {
	expr, err := logql.Parse(p.Query)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, isLog := expr.(*logql.LogQuery); isLog && instant {
		h.fail(w, r, bad(errLogInstant))
		return
	}
	p.Expr = expr
	res, err := h.engine.Query(r.Context(), h.src, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, success{Status: "success", Data: encodeResult(res)})
}

// encodeResult gives a result Loki's JSON shape.
func encodeResult(res logql.Result) queryData {
	d := queryData{ResultType: string(res.Type), Stats: summary(res.Stats)}
	switch res.Type {
	case logql.ResultStreams:
		out := make([]streamResult, 0, len(res.Streams))
		for _, s := range res.Streams {
			sr := streamResult{Stream: labelMap(s.Labels), Values: make([][2]string, len(s.Entries))}
			for i, e := range s.Entries {
				sr.Values[i] = [2]string{strconv.FormatInt(e.Timestamp, 10), e.Line}
			}
			out = append(out, sr)
		}
		d.Result = out
	case logql.ResultMatrix:
		out := make([]matrixSeries, 0, len(res.Matrix))
		for _, s := range res.Matrix {
			ms := matrixSeries{Metric: labelMap(s.Metric), Values: make([]point, len(s.Floats))}
			for i, f := range s.Floats {
				ms.Values[i] = point{T: f.T, V: f.F}
			}
			out = append(out, ms)
		}
		d.Result = out
	case logql.ResultVector:
		out := make([]vectorSample, 0, len(res.Vector))
		for _, s := range res.Vector {
			out = append(out, vectorSample{Metric: labelMap(s.Metric), Value: point{T: s.T, V: s.F}})
		}
		d.Result = out
	default:
		d.Result = point{T: res.Scalar.T, V: res.Scalar.V}
	}
	return d
}

// labelMap is labels as a JSON object; never null.
func labelMap(l labels.Labels) map[string]string {
	m := l.Map()
	if m == nil {
		m = map[string]string{}
	}
	return m
}

func summary(s logql.Stats) *stats {
	secs := s.ExecTime.Seconds()
	out := &stats{Summary: statsSummary{
		TotalBytesProcessed:  s.BytesScanned,
		TotalLinesProcessed:  s.EntriesScanned,
		ExecTime:             secs,
		Subqueries:           1,
		TotalEntriesReturned: int(s.EntriesReturned),
		Splits:               1,
		Shards:               1,
	}}
	if secs > 0 {
		out.Summary.BytesProcessedPerSecond = int64(float64(s.BytesScanned) / secs)
		out.Summary.LinesProcessedPerSecond = int64(float64(s.EntriesScanned) / secs)
	}
	return out
}

// volumeRange is index/volume over time: the bytes of each group per
// step, evaluated as sum by (groups) (bytes_over_time(selector[step])).
func (h *handler) volumeRange(w http.ResponseWriter, r *http.Request) {
	v, start, end, ok := h.rangeParams(w, r)
	if !ok {
		return
	}
	step, err := stepParam(first(v, "step"), start, end)
	if err != nil {
		h.fail(w, r, bad(err))
		return
	}
	lq, by, err := volumeGroups(v)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := fmt.Sprintf("sum by (%s) (bytes_over_time(%s [%s]))", strings.Join(by, ", "), lq.Selector(), formatStep(step))
	h.run(w, r, logql.Params{Query: q, Start: start, End: end, Step: step}, false)
}

// formatStep prints a step as a LogQL range: whole milliseconds.
func formatStep(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}
