package promapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/vigil-observability/vigil/internal/query/querylimit"
)

// MaxQueryDepth bounds the nesting of brackets in a query. The engine's
// pretty printer (/format_query) takes time cubic in the depth: 800 levels
// cost over half a second, 5000 several minutes. Real queries nest a few
// levels.
const MaxQueryDepth = 200

// queryGuard refuses, with the API's own bad_data error shape, what would
// cost the process far more than the request is worth: queries nested past
// MaxQueryDepth and remote read requests with matchers that do not compile
// (Prometheus answers those with a 500). It runs every request that reads
// storage under a query slot, answering 503 with Retry-After when none
// frees up in time, and gives it a series budget. What the engine will
// evaluate (subquery steps, times, ranges) is judged by the engine itself
// (querylimit.Engine): it sees the values after parsing, whichever form
// the request came in.
type queryGuard struct {
	next      http.Handler
	slots     *querylimit.Slots
	maxSeries int
}

// readsStorage are the endpoints whose cost grows with the data and that
// do not go through the engine: they run under a query slot.
var readsStorage = []string{"/series", "/labels", "/query_exemplars", "/read"}

// evaluates are the endpoints that run PromQL: the engine takes their slot
// once it has checked the query, so that a query it refuses is refused at
// once however busy the server is.
var evaluates = []string{"/query", "/query_range"}

func (g queryGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathPrefix+"/read" {
		if msg := checkReadRequest(r); msg != "" {
			badData(w, msg)
			return
		}
		g.limited(w, r)
		return
	}
	// The API reads its parameters with FormValue, which parses URL,
	// url-encoded and multipart forms and ignores errors: parse the same
	// way (the parsed form is kept, so the API reads what was checked).
	// A body that does not parse still leaves the URL's values in Form.
	_ = r.ParseMultipartForm(maxFormMemory)
	if r.Form != nil {
		for _, key := range []string{"query", "match[]"} {
			for _, q := range r.Form[key] {
				if d := bracketDepth(q); d > MaxQueryDepth {
					badData(w, fmt.Sprintf("%s nests %d levels deep, more than the %d allowed", key, d, MaxQueryDepth))
					return
				}
			}
		}
	}
	g.limited(w, r)
}

// limited serves r under a query slot if it reads storage.
func (g queryGuard) limited(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, PathPrefix)
	if slices.Contains(evaluates, p) {
		g.next.ServeHTTP(retryAfter{w}, r)
		return
	}
	if !slices.Contains(readsStorage, p) && !(strings.HasPrefix(p, "/label/") && strings.HasSuffix(p, "/values")) {
		g.next.ServeHTTP(w, r)
		return
	}
	g.slots.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p == "/read" {
			// Remote read is bounded by its sample limit (query.max_samples);
			// a series error would reach its clients as a 500.
			g.next.ServeHTTP(w, r)
			return
		}
		g.next.ServeHTTP(w, r.WithContext(querylimit.WithSeriesBudget(r.Context(), g.maxSeries)))
	}), func(w http.ResponseWriter, code int, msg string) {
		typ := "unavailable"
		if code != http.StatusServiceUnavailable {
			typ = "canceled"
		}
		writeError(w, code, typ, msg)
	}).ServeHTTP(w, r)
}

func badData(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusBadRequest, "bad_data", msg)
}

// writeError answers in the API's error shape.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"status": "error", "errorType": typ, "error": msg})
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

// retryAfter adds Retry-After to the API's 503 answers (a query that found
// no slot, or timed out): Prometheus's handler sets none.
type retryAfter struct{ http.ResponseWriter }

func (w retryAfter) WriteHeader(code int) {
	if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", querylimit.RetryAfterSeconds)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w retryAfter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
