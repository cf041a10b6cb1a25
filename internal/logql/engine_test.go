package logql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-observability/vigil/internal/goldentest"
)

// t0 is the start of the fixture's logs.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is ten minutes of logs of a small shop: checkout writes JSON in
// prod and logfmt in staging, the api plain text; some lines carry
// structured metadata, one checkout line is not JSON and one JSON line
// has a key that is also a stream label.
func fixture() *memSource {
	at := func(i int) int64 { return t0.Add(time.Duration(i) * 20 * time.Second).UnixNano() }
	levels := []string{"info", "info", "warn", "error"}
	paths := []string{"/cart", "/pay", "/cart/items"}
	var prod, staging, api memStream
	prod.labels = labels.FromStrings("app", "checkout", "env", "prod")
	staging.labels = labels.FromStrings("app", "checkout", "env", "staging")
	api.labels = labels.FromStrings("app", "api", "env", "prod")
	for i := range 30 {
		lvl := levels[i%len(levels)]
		status := 200
		if lvl == "error" {
			status = 500 + i%3
		}
		line := fmt.Sprintf(`{"level":%q,"msg":"request %d","status":%d,"duration":"%dms","request":{"path":%q,"method":"GET","user-agent":"curl/8"},"items":["a%d","b"]}`,
			lvl, i, status, 5*i, paths[i%len(paths)], i)
		switch i {
		case 7:
			line = `not json: upstream timeout`
		case 11:
			line = `{"app":"shadow","level":"info","msg":"payment ok"}`
		}
		md := labels.EmptyLabels()
		if i%2 == 0 {
			md = labels.FromStrings("detected_level", lvl, "trace_id", fmt.Sprintf("%04x", i))
		}
		prod.entries = append(prod.entries, memEntry{ts: at(i), line: line, metadata: md})

		if i%3 == 0 {
			msg := "payment ok"
			if lvl == "error" || i%9 == 0 {
				msg, lvl = "payment failed: timeout", "error"
			}
			staging.entries = append(staging.entries, memEntry{
				ts:   at(i) + int64(time.Second),
				line: fmt.Sprintf(`level=%s msg=%q status=%d duration=%s`, lvl, msg, 200+i*10, time.Duration(i)*100*time.Millisecond),
			})
		}
		if i%2 == 1 {
			api.entries = append(api.entries, memEntry{
				ts:       at(i) + int64(2*time.Second),
				line:     fmt.Sprintf("GET /api/v1/items/%d %s in %dms", i, []string{"200 OK", "404 Not Found", "503 Service Unavailable"}[i%3], i),
				metadata: labels.FromStrings("detected_level", map[bool]string{true: "error", false: "info"}[i%3 == 2]),
			})
		}
	}
	// A staging line that is not logfmt.
	staging.entries = append(staging.entries, memEntry{ts: at(29) + int64(3*time.Second), line: `level=info msg="unterminated`})
	return &memSource{streams: []memStream{prod, staging, api}}
}

// render prints a result for golden files: streams with their entries,
// series with their points, times as offsets from t0.
func render(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "type: %s\n", r.Type)
	ts := func(ns int64) string { return time.Unix(0, ns).Sub(t0).String() }
	switch r.Type {
	case ResultStreams:
		for _, s := range r.Streams {
			fmt.Fprintf(&b, "%s\n", s.Labels)
			for _, e := range s.Entries {
				fmt.Fprintf(&b, "  %s %s\n", ts(e.Timestamp), e.Line)
			}
		}
	case ResultMatrix:
		for _, s := range r.Matrix {
			fmt.Fprintf(&b, "%s\n", s.Metric)
			for _, p := range s.Floats {
				fmt.Fprintf(&b, "  %s %g\n", ts(p.T*1e6), p.F)
			}
		}
	case ResultVector:
		for _, s := range r.Vector {
			fmt.Fprintf(&b, "%s %g @%s\n", s.Metric, s.F, ts(s.T*1e6))
		}
	case ResultScalar:
		fmt.Fprintf(&b, "%g @%s\n", r.Scalar.V, ts(r.Scalar.T*1e6))
	}
	fmt.Fprintf(&b, "scanned: %d entries, %d bytes; returned %d\n", r.Stats.EntriesScanned, r.Stats.BytesScanned, r.Stats.EntriesReturned)
	return b.String()
}

// rangeAll covers the fixture, with one-minute steps.
func rangeAll(q string) Params {
	return Params{Query: q, Start: t0, End: t0.Add(10 * time.Minute), Step: time.Minute}
}

func instant(q string, at time.Duration) Params {
	return Params{Query: q, Start: t0.Add(at), End: t0.Add(at)}
}

func withLimit(p Params, limit int, d Direction) Params {
	p.Limit, p.Direction = limit, d
	return p
}

// evalCases have golden results in testdata/eval.
var evalCases = []struct {
	name string
	p    Params
}{
	// Log queries, a stage at a time.
	{"log_selector_backward", withLimit(rangeAll(`{app="checkout"}`), 8, Backward)},
	{"log_selector_forward", withLimit(rangeAll(`{app="checkout"}`), 8, Forward)},
	{"log_instant", withLimit(instant(`{app="api"}`, 5*time.Minute), 3, Backward)},
	{"line_filters", rangeAll(`{env=~".+"} |= "payment" != "ok" |~ "time(out)?"`)},
	{"line_filter_not_match", rangeAll(`{app="api"} !~ "[45]0[34]"`)},
	{"grafana_empty_filter", withLimit(rangeAll("{app=\"api\"} |= ``"), 4, Forward)},
	{"json", withLimit(rangeAll(`{app="checkout", env="prod"} | json`), 6, Forward)},
	{"json_params", withLimit(rangeAll(`{app="checkout", env="prod"} | json status="status", path="request.path", ua="request[\"user-agent\"]", first="items[0]", req="request"`), 4, Forward)},
	{"json_errors", rangeAll(`{app="checkout", env="prod"} | json | __error__!=""`)},
	{"json_clash_with_stream_label", rangeAll(`{app="checkout", env="prod"} | json | app_extracted!=""`)},
	{"logfmt", rangeAll(`{env="staging"} | logfmt`)},
	{"label_filter_number", rangeAll(`{env="staging"} | logfmt | status >= 400 and status < 460`)},
	{"label_filter_duration", rangeAll(`{env="staging"} | logfmt | duration > 1.5s or level="warn"`)},
	{"label_filter_missing_label", rangeAll(`{app="api"} | nolabel < 5`)},
	{"label_filter_metadata", rangeAll(`{app="api"} | detected_level="error"`)},
	{"label_filter_not_a_number", rangeAll(`{env="staging"} | logfmt | msg > 3`)},
	{"line_format", withLimit(rangeAll(`{app="checkout", env="prod"} | json | line_format "{{.level | ToUpper}} {{.request_path}} {{ .missing | default \"-\" }} {{ __line__ | len }}"`), 5, Forward)},
	{"drop_keep", withLimit(rangeAll(`{app="checkout", env="prod"} | json | drop __error__, request_method, items, detected_level="info" | keep app, level, detected_level, request_path, __error__`), 10, Forward)},
	{"filter_after_line_format", rangeAll(`{app="checkout", env="prod"} | json | line_format "{{.level}}" |= "warn"`)},

	// Metric queries.
	{"count_over_time", rangeAll(`count_over_time({app="api"}[2m])`)},
	{"rate_json_drop_error", rangeAll(`sum by (level) (rate({app="checkout", env="prod"} | json | drop __error__ [5m]))`)},
	{"bytes_over_time", rangeAll(`bytes_over_time({env="staging"}[3m])`)},
	{"bytes_rate_offset", rangeAll(`bytes_rate({app="api"}[2m] offset 2m)`)},
	{"instant_count", instant(`count_over_time({app="checkout"}[10m])`, 10*time.Minute)},
	{"grafana_health_check", instant(`vector(1)+vector(1)`, time.Minute)},
	{"grafana_log_volume", rangeAll(`sum by (level, detected_level) (count_over_time({app=~".+"} | drop __error__[1m]))`)},
	{"grafana_log_volume_json", rangeAll(`sum by (level) (count_over_time({app="checkout"} | json | drop __error__[2m]))`)},
	{"aggregations", instant(`sum(count_over_time({app=~".+"}[10m])) + avg(count_over_time({app=~".+"}[10m])) * 1000 + max(count_over_time({app=~".+"}[10m])) * 1e6 + min(count_over_time({app=~".+"}[10m])) * 1e9`, 10*time.Minute)},
	{"count_without", rangeAll(`count without (app) (count_over_time({app=~".+"}[5m]))`)},
	{"stddev_stdvar", instant(`stddev(count_over_time({app=~".+"}[10m])) or stdvar by (app) (count_over_time({app=~".+"}[10m]))`, 10*time.Minute)},
	{"topk", rangeAll(`topk(1, count_over_time({app=~".+"}[3m]))`)},
	{"bottomk_by", instant(`bottomk by (app) (1, count_over_time({app=~".+"}[10m]))`, 10*time.Minute)},
	{"scalar_arithmetic", instant(`2 ^ 3 ^ 2 - 10 % 4`, 0)},
	{"scalar_range", rangeAll(`1 + 1`)},
	{"vector_scalar", rangeAll(`count_over_time({app="api"}[2m]) * 60 / 2`)},
	{"comparison_filter", rangeAll(`count_over_time({app=~".+"}[2m]) > 2`)},
	{"comparison_bool", rangeAll(`count_over_time({app="api"}[2m]) >= bool 2`)},
	{"scalar_left_comparison", rangeAll(`2 < count_over_time({app=~".+"}[2m])`)},
	{"vector_vector", rangeAll(`count_over_time({app="checkout"} |= "error" [5m]) / count_over_time({app="checkout"}[5m])`)},
	{"and_unless", rangeAll(`count_over_time({app=~".+"}[1m]) and count_over_time({app=~".+"} |= "error" [1m]) or vector(-1)`)},
	{"unless", rangeAll(`count_over_time({app=~".+"}[1m]) unless count_over_time({app=~".+"} |= "error" [1m])`)},
}

func TestEngineGolden(t *testing.T) {
	e := NewEngine(EngineOptions{})
	for _, tc := range evalCases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Query(context.Background(), fixture(), tc.p)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Compare(t, "eval/"+tc.name+".golden", []byte(tc.p.Query+"\n\n"+render(res)))
		})
	}
}

func TestEngineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts EngineOptions
		p    Params
		want error
		msg  string
	}{
		{"parse", EngineOptions{}, rangeAll(`{app="x"`), ErrParse, "expected ',' or '}'"},
		{"pipeline error", EngineOptions{}, rangeAll(`count_over_time({app="checkout", env="prod"} | json [1m])`), ErrPipeline, `JSONParserErr on series {__error__="JSONParserErr", app="checkout", env="prod"}`},
		{"logfmt pipeline error", EngineOptions{}, rangeAll(`sum(rate({env="staging"} | logfmt [1m]))`), ErrPipeline, "LogfmtParserErr"},
		{"too many entries", EngineOptions{MaxEntries: 10}, rangeAll(`{app="checkout"}`), ErrTooManyEntries, "more than 10"},
		{"too many streams", EngineOptions{MaxStreams: 2}, rangeAll(`{app=~".+"}`), ErrTooManyStreams, `{app=~".+"} matches 3 streams, more than 2`},
		{"too many series", EngineOptions{MaxSeries: 2}, rangeAll(`count_over_time({app=~".+"}[1m])`), ErrTooManySeries, "more than 2"},
		{"too many series after a binary op", EngineOptions{MaxSeries: 2}, rangeAll(`count_over_time({env="staging"}[1m]) or count_over_time({app="api"}[1m])`), ErrTooManySeries, "3, more than 2"},
		{"too many points", EngineOptions{}, Params{Query: `count_over_time({app="api"}[1m])`, Start: t0, End: t0.Add(24 * time.Hour), Step: time.Second}, ErrTooManyPoints, "86401 steps of 1s, more than 11000"},
		{"no step", EngineOptions{}, Params{Query: `count_over_time({app="api"}[1m])`, Start: t0, End: t0.Add(time.Hour)}, ErrBadQuery, "positive step"},
		{"end before start", EngineOptions{}, Params{Query: `{app="api"}`, Start: t0, End: t0.Add(-time.Hour)}, ErrBadQuery, "before start"},
		{"scalar comparison", EngineOptions{}, instant(`1 > 2`, 0), ErrBadQuery, "must use bool"},
		{"bad template", EngineOptions{}, rangeAll(`{app="api"} | line_format "{{.a"`), ErrBadQuery, "line_format template"},
		{"bad json path", EngineOptions{}, rangeAll(`{app="api"} | json a="b[1"`), ErrUnsupported, "unclosed ["},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEngine(tc.opts).Query(context.Background(), fixture(), tc.p)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestEngineCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewEngine(EngineOptions{}).Query(ctx, fixture(), rangeAll(`{app="api"}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestPushDown checks what the engine asks the source for: the |=
// literals read before any line_format, and a limit only when no stage
// drops lines.
func TestPushDown(t *testing.T) {
	for _, tc := range []struct {
		query    string
		contains []string
		limit    int
	}{
		{`{app="api"}`, nil, 5},
		{"{app=\"api\"} |= `` | json | drop x", nil, 5},
		{`{app="api"} |= "GET" |= "Found" != "x" |~ "a"`, []string{"GET", "Found"}, 0},
		{`{app="api"} |= "GET" | line_format "{{.app}}" |= "api"`, []string{"GET"}, 0},
		{`{app="api"} | json | a="b"`, nil, 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			src := fixture()
			if _, err := NewEngine(EngineOptions{}).Query(context.Background(), src, withLimit(rangeAll(tc.query), 5, Backward)); err != nil {
				t.Fatal(err)
			}
			if len(src.asked) != 1 {
				t.Fatalf("asked %d entry queries, want 1", len(src.asked))
			}
			q := src.asked[0]
			if fmt.Sprint(q.Contains) != fmt.Sprint(tc.contains) || q.Limit != tc.limit || q.Forward {
				t.Errorf("asked Contains %q Limit %d Forward %v, want %q %d false", q.Contains, q.Limit, q.Forward, tc.contains, tc.limit)
			}
		})
	}
}

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"level": "level", "user-agent": "user_agent", "a.b": "a_b", "1st": "_1st", "ünï": "_n_", "a b": "a_b", "": "",
	} {
		if got := sanitizeLabelName(in); got != want {
			t.Errorf("sanitizeLabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLogfmt(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`a=1 b="x y" c`, `{a="1", b="x y", c=""}`},
		{`a="q\"uote" b=`, `{a="q\"uote", b=""}`},
		{`  k.v=1  `, `{k_v="1"}`},
		{`a=1 ="x"`, `{__error__="LogfmtParserErr", a="1"}`},
		{`a="open`, `{__error__="LogfmtParserErr"}`},
	} {
		var l entryLabels
		l.reset(labels.EmptyLabels())
		parseLogfmt(0, tc.line, &l)
		if got := l.labels().String(); got != tc.want {
			t.Errorf("logfmt %q: %s, want %s", tc.line, got, tc.want)
		}
	}
}

func TestLineFormatFuncs(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{`{{ .msg | ToUpper }} {{ .msg | lower }}`, `PAYMENT OK payment ok`},
		{`{{ .msg | title }}|{{ .pad | trim }}|{{ .pad | trimSpace }}`, `Payment Ok|x|x`},
		{`{{ .path | trimPrefix "/api" | trimSuffix "/1" }}`, `/items`},
		{`{{ .path | trimAll "/" }} {{ .path | replace "/" ":" }}`, `api/items/1 :api:items:1`},
		{`{{ .none | default "-" }} {{ .msg | default "-" }} {{ .none }}.`, `- payment ok .`},
		{`{{ if .msg | contains "ok" }}ok{{ end }}{{ if .path | hasPrefix "/api" }}!{{ end }}{{ if .path | hasSuffix "1" }}?{{ end }}`, `ok!?`},
		{`{{ .msg | substr 0 7 }} {{ .msg | substr 8 100 }} {{ .pad | trim | repeat 3 }}`, `payment ok xxx`},
		{`{{ regexReplaceAll "[0-9]+" .path "N" }}`, `/api/items/N`},
		{`{{ __timestamp__ | date "2006-01-02T15:04" }} {{ __timestamp__ | unixEpoch }} {{ __line__ }}`, `2026-01-01T00:00 1767225600 the line`},
	} {
		lf, err := compileLineFormat(&LineFormat{Template: tc.tmpl})
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		var l entryLabels
		l.reset(labels.FromStrings("msg", "payment ok", "pad", "  x ", "path", "/api/items/1"))
		got, _ := lf(t0.UnixNano(), "the line", &l)
		if got != tc.want || l.hasErr() {
			t.Errorf("%s: %q (error label %v), want %q", tc.tmpl, got, l.hasErr(), tc.want)
		}
	}
}

func TestLineFormatError(t *testing.T) {
	lf, err := compileLineFormat(&LineFormat{Template: `{{ regexReplaceAll "(" .a "x" }}`})
	if err != nil {
		t.Fatal(err)
	}
	var l entryLabels
	l.reset(labels.FromStrings("a", "b"))
	if got, ok := lf(0, "kept", &l); got != "kept" || !ok || l.labels().Get(errorLabel) != errTemplateFormat {
		t.Errorf("failing template: line %q kept %v labels %s", got, ok, l.labels())
	}
}
