package jaegerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// shapes is testdata/grafana_shapes.json: what Grafana's Jaeger data
// source reads from each endpoint.
type shapes struct {
	Types     map[string]map[string]string `json:"types"`
	Endpoints map[string]string            `json:"endpoints"`
}

// check reports where v departs from the type spec: "string", "number",
// "bool", "any", "enum:A|B", "array:T", "map:T" or a named type, with a
// trailing "?" when the key may be absent and "?null" when it may also be
// null.
func (s shapes) check(path string, spec string, v any, present bool) []string {
	optional := strings.HasSuffix(spec, "?") || strings.HasSuffix(spec, "?null")
	nullable := strings.HasSuffix(spec, "?null")
	spec = strings.TrimSuffix(strings.TrimSuffix(spec, "null"), "?")
	switch {
	case !present && optional, v == nil && nullable:
		return nil
	case !present:
		return []string{path + ": missing"}
	}
	bad := func() []string { return []string{fmt.Sprintf("%s: want %s, got %T %v", path, spec, v, v)} }
	switch {
	case spec == "any":
		return nil
	case spec == "string":
		if _, ok := v.(string); !ok {
			return bad()
		}
	case spec == "number":
		if _, ok := v.(float64); !ok {
			return bad()
		}
	case spec == "bool":
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case strings.HasPrefix(spec, "enum:"):
		if s, ok := v.(string); !ok || !slices.Contains(strings.Split(spec[5:], "|"), s) {
			return bad()
		}
	case strings.HasPrefix(spec, "array:"):
		arr, ok := v.([]any)
		if !ok {
			return bad()
		}
		var errs []string
		for i, e := range arr {
			errs = append(errs, s.check(fmt.Sprintf("%s[%d]", path, i), spec[6:], e, true)...)
		}
		return errs
	case strings.HasPrefix(spec, "map:"):
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		var errs []string
		for k, e := range m {
			errs = append(errs, s.check(path+"."+k, spec[4:], e, true)...)
		}
		return errs
	default:
		fields, ok := s.Types[spec]
		if !ok {
			return []string{path + ": unknown type " + spec}
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		var errs []string
		for k, fs := range fields {
			fv, present := obj[k]
			errs = append(errs, s.check(path+"."+k, fs, fv, present)...)
		}
		return errs
	}
	return nil
}

// TestGrafanaJaegerShapes checks every endpoint Grafana's Jaeger data
// source calls against the types it declares for the answers, with the
// conformance fixtures stored, so a field it needs cannot go missing or
// change type without a test failing.
func TestGrafanaJaegerShapes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "grafana_shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sh shapes
	if err := json.Unmarshal(raw, &sh); err != nil {
		t.Fatal(err)
	}
	// The checker itself must catch a span without logs and a string flags.
	bad := []any{map[string]any{"traceID": "a", "processes": map[string]any{}, "spans": []any{map[string]any{
		"traceID": "a", "spanID": "b", "processID": "p1", "operationName": "x", "startTime": 1.0, "duration": 1.0, "flags": "1",
	}}}}
	if errs := sh.check("data", sh.Endpoints["/api/traces"], bad, true); len(errs) != 2 {
		t.Errorf("checker found %v in a document with two faults", errs)
	}
	epoch := storagetest.FixtureEpoch
	h := NewHandler(Options{
		Traces:       searchStore(t),
		Dependencies: fixedDeps{{Parent: "checkout", Child: "payments", CallCount: 7}},
		Now:          func() time.Time { return epoch.Add(time.Minute) },
	})
	window := "&start=" + usParam(epoch.Add(-31*time.Hour)) + "&end=" + usParam(epoch.Add(time.Minute))
	requests := map[string]string{
		"/api/traces/{id}":                   "/api/traces/" + fixtureTraceID,
		"/api/traces":                        "/api/traces?service=checkout&tags=" + url.QueryEscape(`{"error":"true"}`) + window,
		"/api/services":                      "/api/services",
		"/api/services/{service}/operations": "/api/services/checkout/operations",
		"/api/operations":                    "/api/operations?service=checkout",
		"/api/dependencies":                  "/api/dependencies",
	}
	for endpoint, spec := range sh.Endpoints {
		t.Run(endpoint, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, requests[endpoint])
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", requests[endpoint], rec.Code, rec.Body)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			data, ok := body["data"].([]any)
			if !ok || len(data) == 0 {
				t.Fatalf("%s: data is %T with nothing to check: %s", endpoint, body["data"], rec.Body)
			}
			for _, e := range sh.check("data", spec, body["data"], true) {
				t.Error(e)
			}
		})
	}
}
