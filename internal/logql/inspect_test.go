package logql

import (
	"fmt"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	e, err := Parse(`sum by (level) (count_over_time({app="x"} | json | a="1" or b>2 | drop c="d" [1m])) / sum(rate({app="y"}[1m]))`)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	Inspect(e, func(n Node) bool {
		kinds = append(kinds, strings.TrimPrefix(fmt.Sprintf("%T", n), "*logql."))
		return true
	})
	want := "BinaryExpr VectorAggregation RangeAggregation LogQuery Matcher Parser LabelFilterStage LabelFilterBinary Matcher NumberFilter DropKeep Matcher VectorAggregation RangeAggregation LogQuery Matcher"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("Inspect visited\n  %s\nwant\n  %s", got, want)
	}
	var sels []string
	for _, q := range LogQueries(e) {
		sels = append(sels, q.Selector())
	}
	if got := strings.Join(sels, " "); got != `{app="x"} {app="y"}` {
		t.Errorf("LogQueries = %s", got)
	}
}
