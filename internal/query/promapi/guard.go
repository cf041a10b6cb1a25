package promapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage/remote"
)

// MaxQueryDepth bounds the nesting of brackets in a query. The engine's
// pretty printer (/format_query) takes time cubic in the depth: 800 levels
// cost over half a second, 5000 several minutes. Real queries nest a few
// levels.
const MaxQueryDepth = 200

// MaxSubquerySteps bounds the steps one subquery may evaluate. The engine
// allocates per-step arrays for every subquery before any sample limit
// applies, so `up[100000d:1ms]` would ask for terabytes and take the whole
// process down. A million steps is a month at a 3 s resolution.
const MaxSubquerySteps = 1_000_000

// queryGuard refuses, with the API's own bad_data error shape, what would
// cost the process far more than the request is worth: queries nested past
// MaxQueryDepth, subqueries of more than MaxSubquerySteps steps, and remote
// read requests with matchers that do not compile (Prometheus answers those
// with a 500). Anything it cannot read it passes on: the API reports those
// errors itself.
type queryGuard struct {
	next        http.Handler
	parser      parser.Parser
	defaultStep func() time.Duration
}

func (g queryGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathPrefix+"/read" {
		if msg := checkReadRequest(r); msg != "" {
			badData(w, msg)
			return
		}
		g.next.ServeHTTP(w, r)
		return
	}
	// The API reads its parameters with FormValue, which parses URL,
	// url-encoded and multipart forms and ignores errors: parse the same
	// way (the parsed form is kept, so the API reads what was checked).
	// A body that does not parse still leaves the URL's values in Form.
	_ = r.ParseMultipartForm(maxFormMemory)
	if r.Form == nil {
		g.next.ServeHTTP(w, r)
		return
	}
	for _, key := range []string{"query", "match[]"} {
		for _, q := range r.Form[key] {
			if d := bracketDepth(q); d > MaxQueryDepth {
				badData(w, fmt.Sprintf("%s nests %d levels deep, more than the %d allowed", key, d, MaxQueryDepth))
				return
			}
		}
	}
	if r.URL.Path != PathPrefix+"/query" && r.URL.Path != PathPrefix+"/query_range" {
		g.next.ServeHTTP(w, r)
		return
	}
	expr, err := g.parser.ParseExpr(r.Form.Get("query")) // FormValue's choice: the first
	if err != nil {
		g.next.ServeHTTP(w, r)
		return
	}
	var outer time.Duration
	if r.URL.Path == PathPrefix+"/query_range" {
		start, err1 := parseAPITime(r.Form.Get("start"))
		end, err2 := parseAPITime(r.Form.Get("end"))
		if err1 != nil || err2 != nil || end.Before(start) {
			g.next.ServeHTTP(w, r)
			return
		}
		outer = end.Sub(start)
	}
	if msg := g.checkSubqueries(expr, outer); msg != "" {
		badData(w, msg)
		return
	}
	g.next.ServeHTTP(w, r)
}

func badData(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	b, _ := json.Marshal(map[string]string{"status": "error", "errorType": "bad_data", "error": msg})
	_, _ = w.Write(b)
}

// bracketDepth is the deepest nesting of (, [ and { outside string literals.
func bracketDepth(q string) int {
	depth, deepest := 0, 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ')' || c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// checkReadRequest decodes a remote read request and compiles its matchers,
// then puts the body back for the API. A body it cannot decode is left to
// the API, which answers 400 for it.
func checkReadRequest(r *http.Request) string {
	if r.Body == nil {
		return ""
	}
	body := r.Body
	compressed, err := io.ReadAll(io.LimitReader(body, maxReadRequestBytes+1))
	// What was read goes back in front of what was not.
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(compressed), body), body}
	if err != nil || len(compressed) > maxReadRequestBytes {
		return ""
	}
	if n, err := snappy.DecodedLen(compressed); err != nil || n > maxReadRequestBytes {
		return ""
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return ""
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(raw); err != nil {
		return ""
	}
	for _, q := range req.Queries {
		if _, err := remote.FromLabelMatchers(q.Matchers); err != nil {
			return "invalid matcher: " + err.Error()
		}
	}
	return ""
}

// maxFormMemory is what net/http's FormValue gives a multipart form.
const maxFormMemory = 32 << 20

// maxReadRequestBytes bounds the remote read requests the guard decodes;
// real ones are a few kilobytes of matchers.
const maxReadRequestBytes = 4 << 20

// check walks the expression with the time span each node is evaluated
// over: a subquery runs over its parent's span plus its own range.
func (g queryGuard) checkSubqueries(expr parser.Expr, outer time.Duration) string {
	var msg string
	var walk func(n parser.Node, span time.Duration)
	walk = func(n parser.Node, span time.Duration) {
		if msg != "" || n == nil {
			return
		}
		if sq, ok := n.(*parser.SubqueryExpr); ok {
			step := sq.Step
			if step <= 0 {
				step = g.defaultStep()
			}
			span += sq.Range
			if step > 0 {
				if steps := float64(span) / float64(step); steps > MaxSubquerySteps {
					msg = fmt.Sprintf("subquery %s would evaluate %.3g steps, more than the %d allowed: use a coarser resolution or a shorter range",
						sq.String(), steps, MaxSubquerySteps)
					return
				}
			}
		}
		for _, c := range parser.Children(n) {
			walk(c, span)
		}
	}
	walk(expr, outer)
	return msg
}

// parseAPITime reads a time as the Prometheus API does: Unix seconds
// (fractions allowed) or RFC 3339.
func parseAPITime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
			return time.Time{}, fmt.Errorf("time %q out of range", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
