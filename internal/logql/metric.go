package logql

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// series is one series of a metric expression over all the query's
// steps: vals[i] holds a sample at step i when ok[i].
type series struct {
	lbls labels.Labels
	vals []float64
	ok   []bool
}

func newSeries(l labels.Labels, n int) series {
	return series{lbls: l, vals: make([]float64, n), ok: make([]bool, n)}
}

// value is what a metric expression evaluates to: a scalar (numbers are
// the same at every step) or series.
type value struct {
	isScalar bool
	scalar   float64
	series   []series
}

func (ev *evaluator) eval(x MetricExpr, steps []int64) (value, error) {
	switch x := x.(type) {
	case *NumberLiteral:
		return value{isScalar: true, scalar: x.Value}, nil
	case *VectorLiteral:
		s := newSeries(labels.EmptyLabels(), len(steps))
		for i := range steps {
			s.vals[i], s.ok[i] = x.Value, true
		}
		return value{series: []series{s}}, nil
	case *RangeAggregation:
		return ev.rangeAggregation(x, steps, nil)
	case *VectorAggregation:
		var (
			v   value
			err error
		)
		if ra, ok := x.Expr.(*RangeAggregation); ok && x.Op == Sum {
			// The range aggregations add up, so a sum of them can count
			// the entries by group directly: the inner series, which a
			// parser can make one per line, are never held.
			v, err = ev.rangeAggregation(ra, steps, groupOrAll(x.Grouping))
		} else {
			v, err = ev.eval(x.Expr, steps)
		}
		if err != nil {
			return value{}, err
		}
		return vectorAggregation(x, v, len(steps)), nil
	case *BinaryExpr:
		l, err := ev.eval(x.LHS, steps)
		if err != nil {
			return value{}, err
		}
		r, err := ev.eval(x.RHS, steps)
		if err != nil {
			return value{}, err
		}
		return binary(x, l, r, len(steps))
	}
	return value{}, fmt.Errorf("%w: expression %s", ErrUnsupported, x)
}

// groupOrAll is the grouping of an aggregation; nil, which aggregates
// everything, groups by no label.
func groupOrAll(g *Grouping) *Grouping {
	if g == nil {
		return &Grouping{}
	}
	return g
}

// rangeAggregation reads the log query's entries once, over the union of
// every step's window, keeps each output series' timestamps (and line
// sizes) in time order, then slides the window (t-offset-range,
// t-offset] over them step by step. With a grouping, an entry counts for
// the series of its group's labels instead of its own.
func (ev *evaluator) rangeAggregation(x *RangeAggregation, steps []int64, group *Grouping) (value, error) {
	if v, ok, err := ev.countRange(x, steps, group); ok || err != nil {
		return v, err
	}
	rng, off := x.Range.Nanoseconds(), x.Offset.Nanoseconds()
	first, last := steps[0]*1e6-off, steps[len(steps)-1]*1e6-off
	// The source's range is [start, end); the windows are open at the
	// left and closed at the right.
	start, end := time.Unix(0, first-rng+1), time.Unix(0, last+1)

	type acc struct {
		lbls  labels.Labels
		ts    []int64
		sizes []int64 // line sizes; running sums once all are read
	}
	var (
		accs  []*acc
		index = map[string]*acc{}
		key   []byte
		order []int
		err   error
	)
	scanErr := ev.scan(x.Query, start, end, true, 0, func(ts int64, line string, lbs *entryLabels) bool {
		if v, bad := lbs.get(errorLabel); bad {
			// Checked before grouping, which may leave __error__ out, as
			// Loki checks the range aggregation's own series.
			err = fmt.Errorf("%w: %s on series %s; skip such lines with | %s=\"\" or | drop %s", ErrPipeline, v, lbs.labels(), errorLabel, errorLabel)
			return false
		}
		if group != nil {
			lbs.group(group)
		}
		key, order = lbs.key(key[:0], order)
		a, ok := index[string(key)]
		if !ok {
			if (len(accs)+1)*len(steps) > ev.opts.MaxSamples {
				err = fmt.Errorf("%w: %s has %d series over %d steps, more than %d samples; aggregate with sum by (...), narrow the selector or increase the step", ErrTooManySamples, x, len(accs)+1, len(steps), ev.opts.MaxSamples)
				return false
			}
			a = &acc{lbls: lbs.labels()}
			index[string(key)] = a
			accs = append(accs, a)
		}
		a.ts = append(a.ts, ts)
		a.sizes = append(a.sizes, int64(len(line)))
		return true
	})
	if scanErr != nil {
		return value{}, scanErr
	}
	if err != nil {
		return value{}, err
	}

	out := make([]series, 0, len(accs))
	for _, a := range accs {
		if !slices.IsSorted(a.ts) {
			// A source yields entries in time order; keep the window
			// arithmetic right if one does not.
			sort.Sort(byTime{a.ts, a.sizes})
		}
		for i := 1; i < len(a.sizes); i++ {
			a.sizes[i] += a.sizes[i-1]
		}
		s := newSeries(a.lbls, len(steps))
		lo, hi := 0, 0
		has := false
		for i, t := range steps {
			right := t*1e6 - off
			for hi < len(a.ts) && a.ts[hi] <= right {
				hi++
			}
			for lo < hi && a.ts[lo] <= right-rng {
				lo++
			}
			count := hi - lo
			if count == 0 {
				continue
			}
			bytes := a.sizes[hi-1]
			if lo > 0 {
				bytes -= a.sizes[lo-1]
			}
			v, err := rangeValue(x, int64(count), bytes)
			if err != nil {
				return value{}, err
			}
			s.vals[i] = v
			s.ok[i], has = true, true
		}
		if has {
			out = append(out, s)
		}
	}
	return value{series: out}, nil
}

// rangeValue is a range aggregation's value over a window that holds
// count lines of bytes bytes.
func rangeValue(x *RangeAggregation, count, bytes int64) (float64, error) {
	switch x.Op {
	case CountOverTime:
		return float64(count), nil
	case Rate:
		return float64(count) / x.Range.Seconds(), nil
	case BytesOverTime:
		return float64(bytes), nil
	case BytesRate:
		return float64(bytes) / x.Range.Seconds(), nil
	}
	return 0, fmt.Errorf("%w: range aggregation %s", ErrUnsupported, x.Op)
}

// byTime sorts timestamps with their line sizes.
type byTime struct{ ts, sizes []int64 }

func (b byTime) Len() int           { return len(b.ts) }
func (b byTime) Less(i, j int) bool { return b.ts[i] < b.ts[j] }
func (b byTime) Swap(i, j int) {
	b.ts[i], b.ts[j] = b.ts[j], b.ts[i]
	b.sizes[i], b.sizes[j] = b.sizes[j], b.sizes[i]
}

// groupLabels are the labels of a series' group under by or without.
func groupLabels(l labels.Labels, g *Grouping) labels.Labels {
	if g == nil {
		return labels.EmptyLabels()
	}
	if g.Without {
		return labels.NewBuilder(l).Del(g.Labels...).Labels()
	}
	return labels.NewBuilder(l).Keep(g.Labels...).Labels()
}

func vectorAggregation(x *VectorAggregation, v value, n int) value {
	// Each input series falls in one group for the whole query: labels do
	// not change from step to step.
	groupOf := make([]int, len(v.series))
	var groups []labels.Labels
	gindex := map[string]int{}
	for i, s := range v.series {
		gl := groupLabels(s.lbls, x.Grouping)
		k := gl.String()
		g, ok := gindex[k]
		if !ok {
			g = len(groups)
			gindex[k] = g
			groups = append(groups, gl)
		}
		groupOf[i] = g
	}

	if x.Op == Topk || x.Op == Bottomk {
		return topk(x, v, groupOf, len(groups), n)
	}

	out := make([]series, len(groups))
	for g, gl := range groups {
		out[g] = newSeries(gl, n)
	}
	// Per group and step: count, sum, min, max and Welford's mean and M2
	// for stddev and stdvar.
	type agg struct {
		count                 int
		sum, mn, mx, mean, m2 float64
	}
	aggs := make([]agg, len(groups))
	for i := range n {
		clear(aggs)
		for si, s := range v.series {
			if !s.ok[i] {
				continue
			}
			f := s.vals[i]
			a := &aggs[groupOf[si]]
			if a.count == 0 {
				a.mn, a.mx = f, f
			}
			a.count++
			a.sum += f
			a.mn, a.mx = math.Min(a.mn, f), math.Max(a.mx, f)
			d := f - a.mean
			a.mean += d / float64(a.count)
			a.m2 += d * (f - a.mean)
		}
		for g := range aggs {
			a := aggs[g]
			if a.count == 0 {
				continue
			}
			var r float64
			switch x.Op {
			case Sum:
				r = a.sum
			case Avg:
				r = a.mean
			case Min:
				r = a.mn
			case Max:
				r = a.mx
			case Count:
				r = float64(a.count)
			case Stdvar:
				r = a.m2 / float64(a.count)
			case Stddev:
				r = math.Sqrt(a.m2 / float64(a.count))
			}
			out[g].vals[i], out[g].ok[i] = r, true
		}
	}
	return value{series: out}
}

// topk keeps, at each step and in each group, the k largest (or smallest)
// samples, with their own labels, as PromQL does.
func topk(x *VectorAggregation, v value, groupOf []int, ngroups, n int) value {
	out := make([]series, len(v.series))
	for i, s := range v.series {
		out[i] = newSeries(s.lbls, n)
	}
	members := make([][]int, ngroups)
	for i := range n {
		for g := range members {
			members[g] = members[g][:0]
		}
		for si, s := range v.series {
			if s.ok[i] {
				members[groupOf[si]] = append(members[groupOf[si]], si)
			}
		}
		for _, m := range members {
			slices.SortStableFunc(m, func(a, b int) int {
				fa, fb := v.series[a].vals[i], v.series[b].vals[i]
				if x.Op == Bottomk {
					fa, fb = fb, fa
				}
				switch {
				case fa > fb:
					return -1
				case fa < fb:
					return 1
				}
				return labels.Compare(v.series[a].lbls, v.series[b].lbls)
			})
			for _, si := range m[:min(x.Param, len(m))] {
				out[si].vals[i], out[si].ok[i] = v.series[si].vals[i], true
			}
		}
	}
	return value{series: dropEmpty(out)}
}

func dropEmpty(ss []series) []series {
	return slices.DeleteFunc(ss, func(s series) bool { return !slices.Contains(s.ok, true) })
}

func arith(op BinaryOp, a, b float64) float64 {
	switch op {
	case OpAdd:
		return a + b
	case OpSub:
		return a - b
	case OpMul:
		return a * b
	case OpDiv:
		return a / b
	case OpMod:
		return math.Mod(a, b)
	default: // OpPow
		return math.Pow(a, b)
	}
}

func comparison(op BinaryOp, a, b float64) bool {
	switch op {
	case OpEq:
		return a == b
	case OpNe:
		return a != b
	case OpGt:
		return a > b
	case OpGe:
		return a >= b
	case OpLt:
		return a < b
	default: // OpLe
		return a <= b
	}
}

// apply is op on two samples: the value and whether a sample results.
// A comparison without bool keeps the left value (the vector's, when one
// side is a scalar) where it holds.
func apply(x *BinaryExpr, a, b float64, keep float64) (float64, bool) {
	if !x.Op.IsComparison() {
		return arith(x.Op, a, b), true
	}
	ok := comparison(x.Op, a, b)
	if x.ReturnBool {
		if ok {
			return 1, true
		}
		return 0, true
	}
	return keep, ok
}

func binary(x *BinaryExpr, l, r value, n int) (value, error) {
	switch {
	case l.isScalar && r.isScalar:
		if x.Op.IsComparison() && !x.ReturnBool {
			// As in PromQL: a filter has nothing to filter between scalars.
			return value{}, fmt.Errorf("%w: comparisons between scalars must use bool (%s)", ErrBadQuery, x)
		}
		f, _ := apply(x, l.scalar, r.scalar, l.scalar)
		return value{isScalar: true, scalar: f}, nil
	case l.isScalar || r.isScalar:
		vec, scalarLeft := r, true
		if r.isScalar {
			vec, scalarLeft = l, false
		}
		out := make([]series, 0, len(vec.series))
		for _, s := range vec.series {
			o := newSeries(s.lbls, n)
			for i := range n {
				if !s.ok[i] {
					continue
				}
				a, b := s.vals[i], r.scalar
				if scalarLeft {
					a, b = l.scalar, s.vals[i]
				}
				o.vals[i], o.ok[i] = apply(x, a, b, s.vals[i])
			}
			out = append(out, o)
		}
		return value{series: dropEmpty(out)}, nil
	}

	// Vector to vector, one-to-one on all labels.
	rindex := make(map[string]int, len(r.series))
	for i, s := range r.series {
		rindex[s.lbls.String()] = i
	}
	switch x.Op {
	case OpAnd, OpUnless:
		out := make([]series, 0, len(l.series))
		for _, s := range l.series {
			o := newSeries(s.lbls, n)
			ri, has := rindex[s.lbls.String()]
			for i := range n {
				matched := has && r.series[ri].ok[i]
				if s.ok[i] && matched == (x.Op == OpAnd) {
					o.vals[i], o.ok[i] = s.vals[i], true
				}
			}
			out = append(out, o)
		}
		return value{series: dropEmpty(out)}, nil
	case OpOr:
		lindex := make(map[string]int, len(l.series))
		out := make([]series, 0, len(l.series)+len(r.series))
		for i, s := range l.series {
			lindex[s.lbls.String()] = i
			out = append(out, s)
		}
		for _, s := range r.series {
			li, has := lindex[s.lbls.String()]
			o := newSeries(s.lbls, n)
			for i := range n {
				if s.ok[i] && !(has && l.series[li].ok[i]) {
					o.vals[i], o.ok[i] = s.vals[i], true
				}
			}
			if has {
				// Same labels on both sides: one series, the left's
				// samples where it has them.
				for i := range n {
					if o.ok[i] {
						out[li].vals[i], out[li].ok[i] = o.vals[i], true
					}
				}
				continue
			}
			out = append(out, o)
		}
		return value{series: dropEmpty(out)}, nil
	}
	out := make([]series, 0, len(l.series))
	for _, s := range l.series {
		ri, has := rindex[s.lbls.String()]
		if !has {
			continue
		}
		rs := r.series[ri]
		o := newSeries(s.lbls, n)
		for i := range n {
			if s.ok[i] && rs.ok[i] {
				o.vals[i], o.ok[i] = apply(x, s.vals[i], rs.vals[i], s.vals[i])
			}
		}
		out = append(out, o)
	}
	return value{series: dropEmpty(out)}, nil
}
