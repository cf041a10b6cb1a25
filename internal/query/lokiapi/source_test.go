package lokiapi

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/logql"
	"github.com/vigil-observability/vigil/internal/storage"
)

func TestLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"service.name":       "service_name",
		"job":                "job",
		"k8s.pod.name":       "k8s_pod_name",
		"http-status":        "http_status",
		"1st":                "_1st",
		"":                   "_",
		"naïve":              "na_ve",
		"already_fine_Name9": "already_fine_Name9",
	} {
		if got := LabelName(in); got != want {
			t.Errorf("LabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStreamLabels(t *testing.T) {
	got := streamLabels("checkout", map[string]any{
		"service.name": "checkout",
		"host.name":    "h1",
		"pid":          int64(42),
		"ratio":        0.5,
		"canary":       true,
		"tags":         []any{"a", "b"},
		"empty":        "",
	})
	// host.name is no label Loki indexes: it is structured metadata.
	want := labels.FromStrings("service_name", "checkout", "pid", "42", "ratio", "0.5", "canary", "true", "tags", `["a","b"]`)
	if !labels.Equal(got, want) {
		t.Errorf("streamLabels = %s, want %s", got, want)
	}
	if md := metadata(storage.LogRecord{ResourceAttributes: map[string]any{"host.name": "h1", "job": "x"}}); md.Get("host_name") != "h1" || md.Has("job") {
		t.Errorf("metadata of a resource = %s, want host_name and no job", md)
	}
	// A resource without service.name still gets service_name, as Loki 3
	// gives every stream one.
	if got := streamLabels("", map[string]any{"job": "x"}); got.Get("service_name") != "unknown_service" {
		t.Errorf("streamLabels without a service = %s", got)
	}
	if got := streamLabels("api", map[string]any{"job": "x"}); got.Get("service_name") != "api" {
		t.Errorf("streamLabels with the service column only = %s", got)
	}
}

func TestSourceStreamsAndEntries(t *testing.T) {
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	store := newFakeStore(
		rec(base, "checkout", map[string]any{"service.name": "checkout", "k8s.pod.name": "a"}, "GET /cart 200", plog.SeverityNumberInfo),
		rec(base.Add(time.Second), "checkout", map[string]any{"service.name": "checkout", "k8s.pod.name": "b"}, "GET /cart 500", plog.SeverityNumberError),
		rec(base.Add(2*time.Second), "checkout", map[string]any{"service.name": "checkout", "k8s.pod.name": "a"}, "POST /pay 200", plog.SeverityNumberWarn),
		rec(base.Add(3*time.Second), "web", map[string]any{"service.name": "web"}, "hello", 0),
		// Two resources whose attributes come out as the same labels are one
		// stream.
		rec(base.Add(4*time.Second), "web", map[string]any{"service.name": "web", "k8s.pod.name": "1"}, "dot", 0),
		rec(base.Add(5*time.Second), "web", map[string]any{"service.name": "web", "k8s_pod_name": "1"}, "underscore", 0),
	)
	src := NewSource(store)
	ctx := context.Background()
	sel, err := logql.ParseLogQuery(`{service_name="checkout", k8s_pod_name=~"a|b"}`)
	if err != nil {
		t.Fatal(err)
	}
	streams, err := src.Streams(ctx, sel.Matchers, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 {
		t.Fatalf("streams = %v, want the two checkout hosts", streams)
	}
	if streams[0].Labels.Get("k8s_pod_name") != "a" || streams[0].Entries != 2 || streams[0].Bytes != int64(len("GET /cart 200")+len("POST /pay 200")) {
		t.Errorf("first stream = %+v", streams[0])
	}
	if store.lastQuery.Service != "checkout" {
		t.Errorf("service matcher not pushed down: %+v", store.lastQuery)
	}

	var got []logql.Entry
	for e, err := range src.Entries(ctx, logql.EntryQuery{Streams: streams, Start: base, End: base.Add(time.Minute), Forward: true}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("entries = %+v, want 3", got)
	}
	wantStream := []int{0, 1, 0}
	for i, e := range got {
		if e.Stream != wantStream[i] {
			t.Errorf("entry %d (%q) in stream %d, want %d", i, e.Line, e.Stream, wantStream[i])
		}
	}
	if lvl := got[1].Metadata.Get("detected_level"); lvl != "error" {
		t.Errorf("detected_level = %q, want error", lvl)
	}
	if tid := got[0].Metadata.Get("trace_id"); tid != "0102030405060708090a0b0c0d0e0f10" {
		t.Errorf("trace_id = %q", tid)
	}
	if got[0].Metadata.Get("http_route") != "/cart" {
		t.Errorf("record attribute not in metadata: %s", got[0].Metadata)
	}

	web, err := logql.ParseLogQuery(`{service_name="web", k8s_pod_name="1"}`)
	if err != nil {
		t.Fatal(err)
	}
	streams, err = src.Streams(ctx, web.Matchers, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 1 || streams[0].Entries != 2 {
		t.Fatalf("k8s.pod.name and k8s_pod_name should be one stream: %+v", streams)
	}
	n := 0
	for _, err := range src.Entries(ctx, logql.EntryQuery{Streams: streams, Start: base, End: base.Add(time.Minute)}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("merged stream yielded %d entries, want 2", n)
	}
	// No stream: nothing read, rather than everything.
	for range src.Entries(ctx, logql.EntryQuery{Start: base, End: base.Add(time.Minute)}) {
		t.Fatal("entries of no stream")
	}
}

func rec(ts time.Time, service string, res map[string]any, body string, sev plog.SeverityNumber) storage.LogRecord {
	return storage.LogRecord{
		Timestamp: ts, Service: service, ResourceAttributes: res, Body: body, SeverityNumber: sev,
		TraceID:    [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Attributes: map[string]any{"http.route": "/cart"},
	}
}

// TestEntriesWantPages pins that a filtered log query reads the store in
// pages sized by what the engine keeps and goes on past a page whose
// lines the pipeline drops: the store is asked for "timeout" only, and
// != "skipped" drops the newest ten it finds.
func TestEntriesWantPages(t *testing.T) {
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	res := map[string]any{"service.name": "checkout"}
	var recs []storage.LogRecord
	for i := range 10 {
		recs = append(recs, rec(base.Add(time.Duration(i)*time.Second), "checkout", res, fmt.Sprint("timeout ", i), 0))
	}
	for i := range 10 {
		recs = append(recs, rec(base.Add(time.Duration(10+i)*time.Second), "checkout", res, fmt.Sprint("timeout skipped ", 10+i), 0))
	}
	for _, noCursors := range []bool{false, true} {
		store := newFakeStore(recs...)
		store.noCursors = noCursors
		res2, err := logql.NewEngine(logql.EngineOptions{}).Query(context.Background(), NewSource(store), logql.Params{
			Query: `{service_name="checkout"} |= "timeout" != "skipped"`, Start: base, End: base.Add(time.Minute), Limit: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, st := range res2.Streams {
			for _, e := range st.Entries {
				lines = append(lines, e.Line)
			}
		}
		if want := []string{"timeout 9", "timeout 8", "timeout 7"}; !slices.Equal(lines, want) {
			t.Errorf("without cursors %v: lines = %q, want %q", noCursors, lines, want)
		}
		// Pages of 3, 12: the second reaches past the dropped lines.
		// Without cursors the rest is one read.
		if !noCursors && (store.lastFind.Limit != 12 || store.lastFind.After == "") {
			t.Errorf("last store query = %+v, want the second page of 12 after a cursor", store.lastFind)
		}
	}
}

// TestEntriesServicePushdown pins what Entries asks the store for: the
// line filter's substrings, compared exactly as |= compares, and one
// service, which lets the embedded store test the service before the
// substrings, only when every selected stream is that service in the
// store's service column, not merely by its service_name label.
func TestEntriesServicePushdown(t *testing.T) {
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	store := newFakeStore(
		rec(base, "checkout", map[string]any{"service.name": "checkout", "k8s.pod.name": "a"}, "timeout a", 0),
		rec(base.Add(time.Second), "checkout", map[string]any{"service.name": "checkout", "k8s.pod.name": "b"}, "timeout b", 0),
		rec(base.Add(2*time.Second), "web", map[string]any{"service.name": "web"}, "timeout web", 0),
		// A Loki agent's service_name label on a resource without
		// service.name: the label is "cart", the service column empty.
		rec(base.Add(3*time.Second), "", map[string]any{"service_name": "cart"}, "timeout cart", 0),
	)
	src := NewSource(store)
	ctx := context.Background()
	for _, tc := range []struct {
		selector    string
		wantService string
		wantLines   int
	}{
		{`{service_name="checkout"}`, "checkout", 2},
		{`{service_name="checkout", k8s_pod_name="b"}`, "checkout", 1},
		{`{service_name=~"checkout|web"}`, "", 3},
		{`{service_name=~"cart"}`, "", 1},
		{`{service_name=~".+"}`, "", 4},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			sel, err := logql.ParseLogQuery(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			streams, err := src.Streams(ctx, sel.Matchers, base, base.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, err := range src.Entries(ctx, logql.EntryQuery{Streams: streams, Start: base, End: base.Add(time.Minute), Contains: []string{"timeout"}}) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			// |= is case-sensitive: the store is asked to compare exactly.
			if !slices.Equal(store.lastFind.Contains, []string{"timeout"}) || len(store.lastFind.Terms) > 0 {
				t.Errorf("FindLogs asked for contains %q and terms %q, want contains [timeout]", store.lastFind.Contains, store.lastFind.Terms)
			}
			if store.lastFind.Service != tc.wantService {
				t.Errorf("FindLogs asked for service %q, want %q", store.lastFind.Service, tc.wantService)
			}
			if n != tc.wantLines {
				t.Errorf("%d lines, want %d", n, tc.wantLines)
			}
		})
	}
}
