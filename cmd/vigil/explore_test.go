package main

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestExploreAPIsOnDemoData runs the demo shop against the server and
// checks that every query API the UI and Grafana use answers with the
// shop's data: the Jaeger API's services, operations, search and
// dependencies, vigil's trace summaries, RED per service, the service map
// and the log histogram.
func TestExploreAPIsOnDemoData(t *testing.T) {
	s := startServer(t, t.TempDir())
	startDemo(t, s, testport.Run(t, 4))
	shop := []string{"catalog", "gateway", "orders", "payments"}

	waitFor(t, "the four shop services in /api/services", 60*time.Second, func() bool {
		var r struct{ Data []string }
		return s.getJSON(t, "/api/services", &r) == http.StatusOK && len(r.Data) >= 4 &&
			!slices.ContainsFunc(shop, func(svc string) bool { return !slices.Contains(r.Data, svc) })
	})

	var ops struct {
		Data []struct{ Name, SpanKind string }
	}
	if s.getJSON(t, "/api/operations?service=gateway&spanKind=server", &ops) != http.StatusOK || len(ops.Data) == 0 {
		t.Errorf("gateway server operations: %+v", ops)
	}

	// Search: whole traces (Jaeger) and summaries (vigil) for the same query.
	q := url.Values{"service": {"payments"}, "tags": {`{"span.kind":"server"}`}, "limit": {"5"}}
	var traces struct {
		Data []struct {
			TraceID   string
			Spans     []struct{ SpanID, OperationName string }
			Processes map[string]struct{ ServiceName string }
		}
	}
	waitFor(t, "payments traces in a search", 30*time.Second, func() bool {
		return s.getJSON(t, "/api/traces?"+q.Encode(), &traces) == http.StatusOK && len(traces.Data) > 0
	})
	var sums struct {
		Data []struct {
			TraceID     string
			RootService string
			SpanCount   int
			Services    []struct{ Name string }
		}
	}
	if s.getJSON(t, "/api/trace-summaries?"+q.Encode(), &sums) != http.StatusOK || len(sums.Data) == 0 {
		t.Fatalf("trace summaries: %+v", sums)
	}
	for _, sum := range sums.Data {
		// A payment is reached through gateway and orders.
		if sum.SpanCount < 3 || len(sum.Services) < 3 {
			t.Errorf("summary of %s: %d spans over %v", sum.TraceID, sum.SpanCount, sum.Services)
		}
	}

	// RED and the service graph come from the recorder, which flushes
	// every 15 s.
	type edgeKey struct{ parent, child string }
	waitFor(t, "the shop's calls in /api/dependencies", 60*time.Second, func() bool {
		var deps struct {
			Data []struct {
				Parent, Child string
				CallCount     int
			}
		}
		if s.getJSON(t, "/api/dependencies", &deps) != http.StatusOK {
			return false
		}
		seen := map[edgeKey]bool{}
		for _, d := range deps.Data {
			seen[edgeKey{d.Parent, d.Child}] = d.CallCount > 0
		}
		return seen[edgeKey{"gateway", "catalog"}] && seen[edgeKey{"gateway", "orders"}] && seen[edgeKey{"orders", "payments"}]
	})
	var red struct {
		Data struct {
			Services []struct {
				Name string
				Rate *float64
				P99  *float64
			}
		}
	}
	if s.getJSON(t, "/api/red/services", &red) != http.StatusOK {
		t.Fatal("red services")
	}
	for _, svc := range shop {
		i := slices.IndexFunc(red.Data.Services, func(r struct {
			Name string
			Rate *float64
			P99  *float64
		}) bool {
			return r.Name == svc
		})
		if i < 0 || red.Data.Services[i].Rate == nil || *red.Data.Services[i].Rate <= 0 || red.Data.Services[i].P99 == nil {
			t.Errorf("RED of %s missing or empty: %+v", svc, red.Data.Services)
		}
	}
	var sm struct {
		Data struct {
			Edges []struct{ Source, Target string }
		}
	}
	if s.getJSON(t, "/api/servicemap", &sm) != http.StatusOK || len(sm.Data.Edges) < 3 {
		t.Errorf("service map edges: %+v", sm.Data.Edges)
	}
	if got := s.promQuery(t, `sum(traces_span_metrics_calls_total{service_name="payments"})`); len(got) != 1 {
		t.Errorf("span metrics of payments queryable with PromQL: %v", got)
	}

	var hist struct {
		Data struct {
			Total   int
			Buckets []struct{ Counts map[string]int }
		}
	}
	if s.getJSON(t, "/api/logs/histogram?service=gateway", &hist) != http.StatusOK || hist.Data.Total == 0 || len(hist.Data.Buckets) == 0 {
		t.Errorf("log histogram of gateway: %+v", hist.Data)
	}
	var page struct {
		Data       []struct{ Service string }
		NextCursor string `json:"next_cursor"`
	}
	if s.getJSON(t, "/api/logs?service=gateway&limit=2", &page) != http.StatusOK || len(page.Data) != 2 || page.NextCursor == "" {
		t.Fatalf("first page of gateway logs: %+v", page)
	}
	cursor := page.NextCursor
	if s.getJSON(t, "/api/logs?service=gateway&limit=2&cursor="+url.QueryEscape(cursor), &page) != http.StatusOK || len(page.Data) == 0 {
		t.Errorf("second page of gateway logs: %+v", page)
	}
}
