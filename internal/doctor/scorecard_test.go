package doctor

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Every scenario test of a check reports through expectFindings, which
// fails the test on a missing or unexpected finding and keeps the outcome:
// with -scorecard, TestMain prints precision and recall per code over the
// whole scenario suite (the table in docs/doctor.md).
var scorecardFlag = flag.Bool("scorecard", false, "print precision and recall per finding code over the scenario suite")

type outcome struct{ tp, fp, fn int }

var scorecard = struct {
	sync.Mutex
	byCode    map[string]*outcome
	scenarios int
	healthy   int
}{byCode: map[string]*outcome{}}

// findingKey is how scenarios name an expected finding: "code subject".
func findingKey(f Finding) string { return f.Code + " " + f.Subject }

// expectFindings compares a scenario's findings with the expected ones,
// "code subject" each. Findings of severity info are held to the same
// standard: a scenario lists them too.
func expectFindings(t *testing.T, got []Finding, want ...string) {
	t.Helper()
	have := map[string]int{}
	for _, f := range got {
		have[findingKey(f)]++
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	scorecard.Lock()
	defer scorecard.Unlock()
	scorecard.scenarios++
	if len(want) == 0 {
		scorecard.healthy++
	}
	row := func(key string) *outcome {
		code, _, _ := strings.Cut(key, " ")
		o := scorecard.byCode[code]
		if o == nil {
			o = &outcome{}
			scorecard.byCode[code] = o
		}
		return o
	}
	for _, w := range want {
		if have[w] > 0 {
			row(w).tp++
			continue
		}
		row(w).fn++
		t.Errorf("missing finding %q", w)
	}
	for _, f := range got {
		if k := findingKey(f); !wanted[k] {
			row(k).fp++
			t.Errorf("unexpected finding %q (%s): %s", k, f.Severity, f.Evidence.Summary)
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *scorecardFlag {
		writeScorecard(os.Stdout)
	}
	os.Exit(code)
}

func writeScorecard(w io.Writer) {
	scorecard.Lock()
	defer scorecard.Unlock()
	fmt.Fprintf(w, "%d scenarios, %d of them healthy (no finding expected)\n\n", scorecard.scenarios, scorecard.healthy)
	fmt.Fprintln(w, "| code | found | missed | false alarms | precision | recall |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	codes := slices.SortedFunc(maps.Keys(scorecard.byCode), func(a, b string) int { return cmp.Compare(a, b) })
	var all outcome
	for _, c := range codes {
		o := scorecard.byCode[c]
		all.tp, all.fp, all.fn = all.tp+o.tp, all.fp+o.fp, all.fn+o.fn
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s |\n", c, o.tp, o.fn, o.fp, ratio(o.tp, o.tp+o.fp), ratio(o.tp, o.tp+o.fn))
	}
	fmt.Fprintf(w, "| all | %d | %d | %d | %s | %s |\n", all.tp, all.fn, all.fp, ratio(all.tp, all.tp+all.fp), ratio(all.tp, all.tp+all.fn))
}

func ratio(n, d int) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(n)/float64(d))
}
