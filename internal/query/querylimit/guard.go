package querylimit

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// MaxSubquerySteps bounds the steps one subquery may evaluate. The engine
// allocates per-step arrays for every subquery before any sample limit
// applies, so `up[100000d:1ms]` would ask for terabytes and take the whole
// process down. A million steps is a month at a 3 s resolution.
const MaxSubquerySteps = 1_000_000

// MaxRangeSteps bounds the steps of a range query. The Prometheus API
// refuses more than 11,000 already; rules and vigil's own callers go
// through this bound instead.
const MaxRangeSteps = 1_000_000

// maxAbsSeconds bounds the times a query may be evaluated at: the engine
// turns times into int64 nanoseconds, which overflow about 292 years from
// 1970, and then evaluates at times nobody asked for.
const maxAbsSeconds = 9_000_000_000

// ErrRefused wraps every refusal of a query the guard judges too costly or
// cannot judge at all; callers answer it as a bad request.
var ErrRefused = errors.New("query refused")

// Plan is what the guard needs to know about how the engine evaluates.
type Plan struct {
	// Parser reads the query the way the engine will (the same options).
	Parser parser.Parser
	// DefaultStep is the step of subqueries written without one, given the
	// subquery's range in milliseconds: the engine's
	// NoStepSubqueryIntervalFn. Nil means one minute, the engine's default.
	DefaultStep func(rangeMillis int64) int64
}

// Check parses qs and resolves it as the engine will for an evaluation from
// start to end every step (step 0: an instant query at start): duration
// expressions (step(), range(), arithmetic), start()/end() and @. It then
// walks the subqueries with the time span each is evaluated over, offsets
// and @ included, and refuses a query whose subqueries or outer range would
// take more than the allowed steps, or whose times the engine cannot
// represent. Errors wrap ErrRefused, or are the parser's own.
func (p Plan) Check(qs string, start, end time.Time, step time.Duration) error {
	for _, t := range []time.Time{start, end} {
		if s := t.Unix(); s > maxAbsSeconds || s < -maxAbsSeconds {
			return fmt.Errorf("%w: time %s is out of the range the engine can evaluate", ErrRefused, t.UTC().Format(time.RFC3339))
		}
	}
	if end.Before(start) {
		return fmt.Errorf("%w: end %s is before start %s", ErrRefused, end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	}
	startMs, endMs, interval := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	if step == 0 {
		// The engine evaluates an instant query as a one-step range.
		endMs, interval = startMs, 1
	} else if interval <= 0 {
		return fmt.Errorf("%w: step %s is below the engine's millisecond resolution", ErrRefused, step)
	}
	if steps := (endMs-startMs)/interval + 1; steps > MaxRangeSteps {
		return fmt.Errorf("%w: the range would evaluate %d steps, more than the %d allowed: use a coarser step", ErrRefused, steps, MaxRangeSteps)
	}
	p2 := p.Parser
	if p2 == nil {
		p2 = parser.NewParser(parser.Options{ExperimentalDurationExpr: true})
	}
	expr, err := p2.ParseExpr(qs)
	if err != nil {
		return err
	}
	// PreprocessExpr evaluates duration expressions and resolves
	// start()/end() into timestamps, exactly as the engine does before
	// evaluating: what is checked below is what will run.
	expr, err = promql.PreprocessExpr(expr, start, end, step)
	if err != nil {
		return err
	}
	return p.walk(expr, startMs, endMs, interval)
}

// walk follows the engine's evaluator: a step-invariant part runs once, a
// subquery runs over its parent's span widened by its range and shifted by
// its offset, on its own step grid.
func (p Plan) walk(n parser.Node, start, end, interval int64) error {
	switch e := n.(type) {
	case *parser.StepInvariantExpr:
		return p.walk(e.Expr, start, start, interval)
	case *parser.SubqueryExpr:
		offset := e.OriginalOffset.Milliseconds()
		rng := e.Range.Milliseconds()
		parentEnd := end
		if interval > 0 {
			parentEnd = start + ((end-start)/interval)*interval
		}
		subEnd := parentEnd - offset
		if e.Timestamp != nil {
			// @ pins the subquery to one time; it is step-invariant, so the
			// parent evaluates it once.
			subEnd = *e.Timestamp - offset
			start = subEnd + offset
		}
		step := e.Step.Milliseconds()
		if e.Step == 0 {
			step = p.defaultStep(rng)
		}
		if step <= 0 {
			return fmt.Errorf("%w: subquery %s has a step below a millisecond", ErrRefused, e)
		}
		subStart := step * ((start - offset - rng) / step)
		if subStart <= start-offset-rng {
			subStart += step
		}
		if steps := float64(subEnd-subStart)/float64(step) + 1; steps > MaxSubquerySteps {
			return fmt.Errorf("%w: subquery %s would evaluate %.3g steps, more than the %d allowed: use a coarser resolution or a shorter range",
				ErrRefused, e, steps, MaxSubquerySteps)
		}
		return p.walk(e.Expr, subStart, subEnd, step)
	}
	for _, c := range parser.Children(n) {
		if err := p.walk(c, start, end, interval); err != nil {
			return err
		}
	}
	return nil
}

func (p Plan) defaultStep(rangeMillis int64) int64 {
	if p.DefaultStep == nil {
		return time.Minute.Milliseconds()
	}
	return p.DefaultStep(rangeMillis)
}
