package slo

import (
	"fmt"
	"time"
)

// SLIQueries are the PromQL queries behind an SLO's error ratio over one
// window, as the generated recording rules evaluate them.
type SLIQueries struct {
	// Error and Total count the bad and all events; both are empty for a
	// raw SLI, which has only a ratio.
	Error, Total string
	// Ratio is the error ratio: what slo:sli_error:ratio_rate<window>
	// records.
	Ratio string
}

// Queries returns the SLI queries of the SLO o of s over window; span SLIs
// are written over the span metrics as Generate writes them.
func Queries(s Spec, o SLO, window time.Duration) (SLIQueries, error) {
	w := promDuration(window)
	ratio, err := sliExpr(s, o.SLI, w)
	if err != nil {
		return SLIQueries{}, fmt.Errorf("service %q SLO %q: %w", s.Service, o.Name, err)
	}
	q := SLIQueries{Ratio: ratio}
	var ev *EventsSLI
	switch {
	case o.SLI.Spans != nil:
		e := spanEvents(*o.SLI.Spans, s.Service)
		ev = &e
	case o.SLI.Events != nil:
		ev = o.SLI.Events
	}
	if ev != nil {
		if q.Error, err = render(ev.ErrorQuery, w); err != nil {
			return SLIQueries{}, err
		}
		if q.Total, err = render(ev.TotalQuery, w); err != nil {
			return SLIQueries{}, err
		}
	}
	return q, nil
}
