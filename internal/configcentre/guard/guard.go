// Package guard evaluates the guards of gray rollouts: a gray names an SLO
// or a PromQL expression, and while it is active an Evaluator checks it
// every interval; a breach aborts the gray (through the same command a
// user's abort is), records why, counts it and raises an alert.
package guard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/slo"
)

// Guard is a gray's guard, as POST .../gray takes it: exactly one field.
type Guard struct {
	// SLO names an SLO of slos:, as "<service>/<name>" or as its name
	// alone when no other service has an SLO of that name. It is breached
	// while the SLO's page alert condition (the fast burn) holds.
	SLO string `json:"slo,omitempty"`
	// PromQL is an instant-vector expression that is breached while it
	// returns anything, as an alerting rule fires: e.g. the gray cohort's
	// error ratio compared with the rest's.
	PromQL string `json:"promql,omitempty"`
}

func (g Guard) String() string {
	b, _ := json.Marshal(g)
	return string(b)
}

// Parse reads a gray's guard; ok is false when there is none (absent or
// null). Errors match configcentre.ErrInvalid.
func Parse(raw json.RawMessage) (g Guard, ok bool, err error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return Guard{}, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return Guard{}, false, fmt.Errorf(`%w: guard: %v (use {"slo": "<service>/<name>"} or {"promql": "<expression>"})`, configcentre.ErrInvalid, err)
	}
	if (g.SLO == "") == (g.PromQL == "") {
		return Guard{}, false, fmt.Errorf(`%w: guard needs exactly one of "slo" or "promql"`, configcentre.ErrInvalid)
	}
	return g, true, nil
}

// Expr is the expression whose non-empty result is a breach, and what it
// judges, for the record ("the page condition of SLO shop/availability").
// An SLO not among specs, or PromQL that does not parse to an instant
// vector, is an error matching configcentre.ErrInvalid.
func (g Guard) Expr(specs []slo.Spec) (expr, judges string, err error) {
	if g.SLO != "" {
		s, o, err := findSLO(specs, g.SLO)
		if err != nil {
			return "", "", err
		}
		return slo.PageCondition(s, o), "the page (fast burn) condition of SLO " + s.Service + "/" + o.Name, nil
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(g.PromQL)
	if err != nil {
		return "", "", fmt.Errorf("%w: guard: promql: %v", configcentre.ErrInvalid, err)
	}
	if e.Type() != parser.ValueTypeVector {
		return "", "", fmt.Errorf("%w: guard: promql: the expression is a %s; it must return an instant vector (non-empty when the gray is bad)", configcentre.ErrInvalid, e.Type())
	}
	return g.PromQL, "the guard's PromQL", nil
}

// Check refuses a guard that is malformed, names an SLO not among specs
// or holds PromQL that does not parse: what POST .../gray answers 400 to.
// No guard passes.
func Check(raw json.RawMessage, specs []slo.Spec) error {
	g, ok, err := Parse(raw)
	if err != nil || !ok {
		return err
	}
	_, _, err = g.Expr(specs)
	return err
}

// findSLO finds name ("<service>/<name>", or a name only one service
// has) among specs.
func findSLO(specs []slo.Spec, name string) (slo.Spec, slo.SLO, error) {
	service, sloName, qualified := strings.Cut(name, "/")
	var found []string
	var s slo.Spec
	var o slo.SLO
	for _, sp := range specs {
		for _, so := range sp.SLOs {
			if (qualified && sp.Service == service && so.Name == sloName) || (!qualified && so.Name == name) {
				found = append(found, sp.Service+"/"+so.Name)
				s, o = sp, so
			}
		}
	}
	switch len(found) {
	case 1:
		return s, o, nil
	case 0:
		var known []string
		for _, sp := range specs {
			for _, so := range sp.SLOs {
				known = append(known, sp.Service+"/"+so.Name)
			}
		}
		if len(known) == 0 {
			return slo.Spec{}, slo.SLO{}, fmt.Errorf("%w: guard: no SLO %q: slos: in vigil.yaml has none", configcentre.ErrInvalid, name)
		}
		return slo.Spec{}, slo.SLO{}, fmt.Errorf("%w: guard: no SLO %q in slos: (known: %s)", configcentre.ErrInvalid, name, strings.Join(known, ", "))
	}
	return slo.Spec{}, slo.SLO{}, fmt.Errorf("%w: guard: SLO %q is ambiguous: name one of %s", configcentre.ErrInvalid, name, strings.Join(found, ", "))
}
