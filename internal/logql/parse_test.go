package logql

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

// parseCases are queries of the subset; each has a golden AST dump in
// testdata/ast and must survive the String round trip.
var parseCases = []struct {
	name, query string
}{
	// What Grafana's Loki data source sends.
	{"grafana_health_check", `vector(1)+vector(1)`},
	{"grafana_log_volume", `sum by (level) (count_over_time({app="x"} | drop __error__[1m]))`},
	{"grafana_log_volume_detected_level", `sum by (level, detected_level) (count_over_time({service_name="checkout", env=~"prod|staging"} | drop __error__[1m]))`},
	{"grafana_log_volume_with_filter", "sum by (level) (count_over_time({service_name=\"load-generator\"} |= `` | drop __error__[15s]))"},
	{"grafana_builder_empty_filter", "{app=\"x\"} |= ``"},
	{"grafana_builder_json_error", "{app=\"x\"} | json | __error__=``"},
	{"grafana_builder_logfmt_level", `{app="x"} | logfmt | level=~"error|warn" | __error__=""`},
	{"grafana_label_browser", `{job="varlogs",filename=~"/var/log/.+"}`},
	{"grafana_interval_rate", `sum(rate({app="x"} |= "error" [1m]))`},

	{"selector_all_ops", `{a="b", c!="d", e=~"f.*", g!~"h"}`},
	{"selector_escapes", "{path=\"C:\\\\logs\\t\\u00e9\", raw=`\\d+`}"},
	{"line_filters_chained", `{app="x"} |= "error" != "timeout" |~ "(?i)fail(ed|ure)" !~ "healthz"`},
	{"json_params", `{app="x"} | json status="response.status", ua="request.headers[\"User-Agent\"]"`},
	{"label_filter_numbers", `{app="x"} | logfmt | status >= 400 and status < 500`},
	{"label_filter_duration", `{app="x"} | logfmt | duration > 1.5s or latency>=500ms`},
	{"label_filter_precedence", `{app="x"} | logfmt | a="1" or b="2" and c="3"`},
	{"label_filter_parens", `{app="x"} | logfmt | (a="1" or b="2"), c!="3" d=~"e.+"`},
	{"label_filter_eq_number", `{app="x"} | json | status=200 | code == -1 | x != 0.5`},
	{"line_format", `{app="x"} | json | line_format "{{.level}} {{ .msg | upper }}"`},
	{"drop_keep", `{app="x"} | logfmt | drop __error__, __error_details__, level="debug" | keep msg, level`},
	{"range_offset", `count_over_time({app="x"}[1h30m] offset 1d)`},
	{"range_parenthesized", `bytes_over_time(({app="x"} |= "GET")[5m])`},
	{"bytes_rate", `bytes_rate({app="x"}[30s] offset -5m)`},
	{"grouping_after", `sum(count_over_time({app="x"}[5m])) by (host)`},
	{"without", `avg without (pod) (rate({app="x"}[1m]))`},
	{"topk", `topk(5, sum by (path) (rate({app="x"} | json [5m])))`},
	{"bottomk_by", `bottomk by (ns) (3, count_over_time({app="x"}[5m]))`},
	{"arith_precedence", `sum(rate({a="b"}[1m])) / sum(rate({a=~".+"}[1m])) * 100 + 2 ^ 3 ^ 2`},
	{"comparison_bool", `count_over_time({a="b"}[5m]) > bool 10`},
	{"set_ops", `rate({a="b"}[1m]) and rate({c="d"}[1m]) or rate({e="f"}[1m]) unless vector(0)`},
	{"negative_scalar", `-1 * -rate_limit_fallback`},
	{"parens_kept", `(vector(1) - vector(2)) - (vector(3) - vector(4)) * 2 / (vector(1) + 1) + (2 ^ 3) ^ 2`},
	{"label_filter_parens_kept", `{app="x"} | logfmt | a="1" and (b="2" or c="3") | (d="4" or e="5") and f="6"`},
	{"nested_parens", `((sum(rate({a="b"}[1m]))))`},
	{"multiline_comment", "sum by (level) ( # per level\n  count_over_time({app=\"x\"}[5m])\n)"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		if tc.name == "negative_scalar" {
			continue // an error case, in TestParseErrors
		}
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Compare(t, "ast/"+tc.name+".golden", []byte(tc.query+"\n=> "+e.String()+"\n\n"+dump(e, true)))
			checkRoundTrip(t, tc.query, e)
		})
	}
}

// checkRoundTrip pins that String prints what parses to the same tree,
// and that printing is then stable.
func checkRoundTrip(t *testing.T, query string, e Expr) {
	t.Helper()
	s := e.String()
	again, err := Parse(s)
	if err != nil {
		t.Fatalf("%q printed as %q, which does not parse: %v", query, s, err)
	}
	if got, want := dump(again, false), dump(e, false); got != want {
		t.Fatalf("%q printed as %q, which parses to another tree:\n%s\nwant:\n%s", query, s, got, want)
	}
	if again.String() != s {
		t.Fatalf("printing is not stable: %q then %q", s, again.String())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		query, want string
	}{
		{``, `1:1: expected a query, found end of query`},
		{`{}`, `1:1: stream selector is empty`},
		{`{app=~".*"}`, `1:1: stream selector {app=~".*"} matches the empty value with every matcher`},
		{`{app="", b!="x"}`, `matches the empty value with every matcher`},
		{`{app="x", ,}`, `1:11: expected label matcher, found ','`},
		{`{app="x", 5}`, `1:11: expected label matcher, found number 5`},
		{`{app "x"}`, `1:6: expected '=', '!=', '=~' or '!~' after label app, found string "x"`},
		{`{app=x}`, `1:6: expected a quoted label value, found identifier x`},
		{`{app="x"`, `1:9: expected ',' or '}', found end of query`},
		{`{app="x}`, `1:6: unterminated string`},
		{`{app="\q"}`, `1:6: invalid escape in string`},
		{`{app=~"(x"}`, `1:7: invalid regexp "(x": missing closing ): (x`},
		{`{app="x"} |~ "a[" `, `1:14: invalid regexp "a["`},
		{`{app="x"} |= x`, `1:14: expected a quoted string after the line filter |=, found identifier x`},
		{`{app="x"} | regexp "(?P<a>.)"`, `1:13: pipeline stage regexp is not supported`},
		{`{app="x"} | unwrap latency`, `pipeline stage unwrap is not supported`},
		{`{app="x"} | foo`, `1:13: expected a parser (json, logfmt), line_format, drop, keep or a label filter, found identifier foo`},
		{`{app="x"} | status > "a"`, `1:22: label status compared with > to a string`},
		{`{app="x"} | status > 1x`, `1:22: bad duration 1x`},
		{`{app="x"} | level="a" or`, `1:25: expected a label filter, found end of query`},
		{`{app="x"} | json a=`, `1:20: expected a quoted JSON path, found end of query`},
		{`{app="x"} | line_format`, `1:24: expected a quoted template after line_format`},
		{`{app="x"} | drop`, `1:17: expected a label name, found end of query`},
		{`count_over_time({app="x"})`, `1:26: count_over_time needs a range after its log query, e.g. count_over_time({app="x"}[5m]); found ')'`},
		{`rate({app="x"}[5])`, `1:16: bad duration 5`},
		{`rate({app="x"}[0s])`, `range must be positive`},
		{`rate({app="x"}[1m] offset)`, `1:26: expected an offset like 1h, found ')'`},
		{`rate({app="x"}[1m]`, `1:19: expected ')' after the range, found end of query`},
		{`sum({app="x"})`, `1:5: sum needs a metric query, found a log query`},
		{`sum(1)`, `1:5: sum needs a vector, found a number`},
		{`sum by (a) (rate({a="b"}[1m])) by (b)`, `sum has two groupings`},
		{`sum by (a (rate({a="b"}[1m]))`, `1:11: expected ',' or ')', found '('`},
		{`topk(rate({a="b"}[1m]))`, `1:6: expected the number of series topk keeps, found identifier rate`},
		{`topk(1.5, rate({a="b"}[1m]))`, `1:6: topk needs a positive integer, found 1.5`},
		{`topk(5 rate({a="b"}[1m]))`, `1:8: expected ',', found identifier rate`},
		{`{a="b"} + 1`, `1:1: operator + needs metric queries on both sides, found a log query`},
		{`1 and vector(1)`, `set operator and is not allowed between scalars`},
		{`vector(x)`, `1:8: unknown function x`},
		{`vector(])`, `1:8: expected a stream selector, an aggregation or a number, found ']'`},
		{`sum_over_time({a="b"} | unwrap x [1m])`, `1:1: function sum_over_time is not supported`},
		{`label_values(app)`, `1:1: unknown function label_values`},
		{`-rate({a="b"}[1m])`, `1:2: expected a number after the sign, found identifier rate`},
		{`-1 * -rate_limit_fallback`, `1:7: expected a number after the sign`},
		{`rate({a="b"}[1m]) rate`, `1:19: expected an operator or end of query, found identifier rate`},
		{`{a="b"} @`, `1:9: unexpected character '@'`},
		{"{a=\"b\"}\n| json\n| x >", `3:6: expected a number or a duration, found end of query`},
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), `query nested more than 200 deep`},
	} {
		_, err := Parse(tc.query)
		var perr *Error
		if !errors.Is(err, ErrParse) || !errors.As(err, &perr) {
			t.Errorf("Parse(%q) = %v, want an *Error wrapping ErrParse", tc.query, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error\n  %v\nwant it to contain\n  %s", tc.query, err, tc.want)
		}
	}
}

func TestParseLogQuery(t *testing.T) {
	q, err := ParseLogQuery(`{app="x"} |= "a"`)
	if err != nil || q.Selector() != `{app="x"}` || len(q.Pipeline) != 1 {
		t.Errorf("ParseLogQuery = %v, %v", q, err)
	}
	if _, err := ParseLogQuery(`rate({app="x"}[1m])`); !errors.Is(err, ErrParse) {
		t.Errorf("ParseLogQuery of a metric query: err = %v, want ErrParse", err)
	}
}

// TestMatches pins the compiled regexps: anchored for label matchers,
// unanchored for line filters.
func TestMatches(t *testing.T) {
	q, err := ParseLogQuery(`{app=~"web|api", env!~"dev.*"} |~ "err(or)?" !~ "^GET /healthz" |= "x" != "y"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m    *Matcher
		in   string
		want bool
	}{
		{q.Matchers[0], "web", true},
		{q.Matchers[0], "webapp", false},
		{q.Matchers[1], "dev1", false},
		{q.Matchers[1], "prod", true},
	} {
		if got := tc.m.Matches(tc.in); got != tc.want {
			t.Errorf("%s matches %q = %v, want %v", tc.m, tc.in, got, tc.want)
		}
	}
	line := "x: an error in POST /healthz"
	wants := []bool{true, true, true, true}
	for i, s := range q.Pipeline {
		if got := s.(*LineFilter).Matches(line); got != wants[i] {
			t.Errorf("%s on %q = %v, want %v", s, line, got, wants[i])
		}
	}
	if (&LineFilter{Op: FilterNotContains, Value: "x"}).Matches(line) {
		t.Errorf(`!= "x" kept a line containing x`)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.query)
	}
	f.Add(`{a="\xff"} |= "\u00e9"`)
	f.Fuzz(func(t *testing.T, q string) {
		e, err := Parse(q)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrParse", q, err)
			}
			return
		}
		checkRoundTrip(t, q, e)
	})
}

func BenchmarkParse(b *testing.B) {
	const q = `sum by (level, detected_level) (count_over_time({service_name="checkout", env=~"prod|staging"} |= "error" | json | status >= 500 | drop __error__[1m]))`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(q); err != nil {
			b.Fatal(err)
		}
	}
}
