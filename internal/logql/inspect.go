package logql

// Inspect walks the tree under n depth first, calling f for each node;
// when f returns false the node's children are skipped. An evaluator uses
// it to find the selectors a query reads before planning it.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || !f(n) {
		return
	}
	switch n := n.(type) {
	case *LogQuery:
		for _, m := range n.Matchers {
			Inspect(m, f)
		}
		for _, s := range n.Pipeline {
			Inspect(s, f)
		}
	case *LabelFilterStage:
		Inspect(n.Filter, f)
	case *LabelFilterBinary:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *DropKeep:
		for _, l := range n.Labels {
			if l.Matcher != nil {
				Inspect(l.Matcher, f)
			}
		}
	case *RangeAggregation:
		Inspect(n.Query, f)
	case *VectorAggregation:
		Inspect(n.Expr, f)
	case *BinaryExpr:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	}
}

// LogQueries returns the log queries of e, in the order they appear.
func LogQueries(e Expr) []*LogQuery {
	var out []*LogQuery
	Inspect(e, func(n Node) bool {
		if q, ok := n.(*LogQuery); ok {
			out = append(out, q)
			return false
		}
		return true
	})
	return out
}
