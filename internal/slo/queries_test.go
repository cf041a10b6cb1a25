package slo

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Queries gives what the generated SLI recording rules evaluate.
func TestQueriesAreTheRecordedSLI(t *testing.T) {
	for _, tc := range []struct {
		file      string
		wantParts bool // error and total queries besides the ratio
	}{
		{"testdata/events.yaml", true},
		{"testdata/raw.yaml", false},
		{"testdata/spans_latency.yaml", true},
		{"testdata/spans_errors.yaml", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			specs, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			groups, err := Generate(specs)
			if err != nil {
				t.Fatal(err)
			}
			recorded := map[string]string{} // group name: the 1h SLI expression
			for _, g := range groups {
				for _, r := range g.Rules {
					if r.Record == "slo:sli_error:ratio_rate1h" {
						recorded[g.Name] = r.Expr
					}
				}
			}
			for _, s := range specs {
				for _, o := range s.SLOs {
					q, err := Queries(s, o, time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					if want := recorded[groupSLIPrefix+s.Service+"-"+o.Name]; q.Ratio != want || want == "" {
						t.Errorf("%s/%s ratio:\n%s\nwant the recorded\n%s", s.Service, o.Name, q.Ratio, want)
					}
					if hasParts := q.Error != "" && q.Total != ""; hasParts != tc.wantParts {
						t.Errorf("%s/%s: error %q, total %q", s.Service, o.Name, q.Error, q.Total)
					}
					if tc.wantParts && (!strings.Contains(q.Error, "[1h]") || !strings.Contains(q.Ratio, q.Total)) {
						t.Errorf("%s/%s: error %q, total %q not over 1h or not in the ratio", s.Service, o.Name, q.Error, q.Total)
					}
				}
			}
		})
	}
}
