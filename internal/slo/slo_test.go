package slo

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

func parseFile(t *testing.T, name string) ([]Spec, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(data)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // substrings of the error
	}{
		{"bad_objective.yaml", []string{"slos[0] (availability).objective", "> 0 and <= 100", "got 120"}},
		{"bad_missing_query.yaml", []string{"slos[0] (availability).sli.events.total_query: is required"}},
		{"bad_no_window.yaml", []string{"sli.events.error_query: must contain the {{.window}} placeholder"}},
		{"bad_template_data.yaml", []string{"sli.raw.error_ratio_query: bad template", "threshold"}},
		{"bad_promql.yaml", []string{"sli.raw.error_ratio_query: not valid PromQL"}},
		{"bad_unknown_field.yaml", []string{"slos[0].sli.events.eror_query (line 8)", `unknown field "eror_query"`, "known fields: error_query, total_query"}},
		{"bad_plugin.yaml", []string{"slos[0].sli.plugin (line 7)", "plugins are not supported"}},
		{"bad_latency_bucket.yaml", []string{"sli.spans.latency_threshold: 300ms is not a bound", "200ms, 400ms"}},
		{"bad_two_slis.yaml", []string{"exactly one of events, raw or spans", "got 2"}},
		{"bad_alert_name.yaml", []string{"alerting.name: is required unless"}},
		{"bad_reserved_label.yaml", []string{`label "sloth_window" is set by the SLO generator`}},
		{"bad_version.yaml", []string{`version: must be "prometheus/v1"`, "slos: at least one SLO"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := parseFile(t, tc.file)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestStrictInConfig checks that a spec decoded as part of a larger file,
// without the decoder's known-fields option, still rejects unknown fields.
func TestStrictInConfig(t *testing.T) {
	var cfg struct {
		SLOs []Spec `yaml:"slos"`
	}
	err := yaml.Unmarshal([]byte(`
slos:
  - version: prometheus/v1
    service: shop
    slos:
      - name: a
        objectve: 99
`), &cfg)
	if err == nil || !strings.Contains(err.Error(), `slos[0].objectve (line 7): unknown field "objectve"`) {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeNode(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		specs     int
	}{
		{"absent", ``, 0},
		{"null", `~`, 0},
		{"one", "version: prometheus/v1\nservice: a\nslos: [{name: x, objective: 99, sli: {spans: {}}, alerting: {name: X}}]", 1},
		{"list", "- version: prometheus/v1\n  service: a\n  slos: [{name: x, objective: 99, sli: {spans: {}}, alerting: {name: X}}]\n" +
			"- version: prometheus/v1\n  service: b\n  slos: [{name: x, objective: 99, sli: {spans: {}}, alerting: {name: X}}]", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tc.doc), &n); err != nil {
				t.Fatal(err)
			}
			specs, err := Decode(&n)
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != tc.specs {
				t.Fatalf("got %d specs, want %d", len(specs), tc.specs)
			}
		})
	}
}

func TestParseDocuments(t *testing.T) {
	var all []byte
	for _, f := range []string{"events.yaml", "spans_latency.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, "---\n"...), data...)
	}
	specs, err := Parse(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Service != "shop" || specs[1].Service != "checkout" {
		t.Fatalf("got %+v", specs)
	}
	if got := time.Duration(specs[1].SLOs[0].SLI.Spans.LatencyThreshold); got != 400*time.Millisecond {
		t.Errorf("latency threshold %v", got)
	}
}

func TestDuplicateID(t *testing.T) {
	specs, err := parseFile(t, "events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(append(specs, specs...)); err == nil || !strings.Contains(err.Error(), `"shop-checkout-availability" (service-slo) is generated twice`) {
		t.Fatalf("got %v", err)
	}
}

func TestBurnFactors(t *testing.T) {
	want := map[string][2]float64{"page": {14.4, 6}, "ticket": {3, 1}}
	for _, a := range alertWindows {
		if got := [2]float64{a.quick.factor(), a.slow.factor()}; got != want[a.severity] {
			t.Errorf("%s burn factors %v, want %v", a.severity, got, want[a.severity])
		}
	}
	var ws []string
	for _, w := range sliWindows {
		ws = append(ws, promDuration(w))
	}
	if got := strings.Join(ws, " "); got != "5m 30m 1h 2h 6h 1d 3d 30d" {
		t.Errorf("windows %s", got)
	}
}

// TestGolden pins the generated rules and checks them as Prometheus checks
// a rule file. go test -update rewrites the golden files.
func TestGolden(t *testing.T) {
	for _, name := range []string{"events", "raw", "spans_errors", "spans_latency"} {
		t.Run(name, func(t *testing.T) {
			specs, err := parseFile(t, name+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			groups, err := Generate(specs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RuleFile(groups)
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := rulefmt.Parse(got, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
				t.Fatalf("rulefmt rejects the rules: %v", errs)
			}
			goldentest.Compare(t, name+".rules.yaml", got)
		})
	}
}
