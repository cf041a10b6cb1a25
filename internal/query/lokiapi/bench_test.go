package lokiapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// BenchmarkEmbedded runs Grafana's Explore calls (the log query and the
// log volume beside it) and a filtered metric query over 100k lines of
// 10 streams in the last hour, in the DuckDB store.
func BenchmarkEmbedded(b *testing.B) {
	s, err := embedded.OpenSpanLogStore(context.Background(), embedded.SpanLogOptions{Dir: b.TempDir(), MemoryLimit: "512MB", Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	now := time.Now()
	const n, streams = 100_000, 10
	for batch := 0; batch < n; batch += 10_000 {
		ld := plog.NewLogs()
		for st := range streams {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", st%3))
			rl.Resource().Attributes().PutStr("host.name", fmt.Sprintf("host-%d", st))
			lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for i := batch + st; i < batch+10_000; i += streams {
				lr := lrs.AppendEmpty()
				lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(i) * 30 * time.Millisecond)))
				sev := plog.SeverityNumberInfo
				if i%17 == 0 {
					sev = plog.SeverityNumberError
				}
				lr.SetSeverityNumber(sev)
				lr.Body().SetStr(`level=info msg="request served" status=` + strconv.Itoa(200+i%5) + ` took=` + strconv.Itoa(i%300) + `ms user=u` + strconv.Itoa(i%1000))
				lr.Attributes().PutStr("http.route", "/api/"+strconv.Itoa(i%7))
			}
		}
		if err := s.WriteLogs(context.Background(), ld); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(NewHandler(Options{Logs: s}))
	b.Cleanup(srv.Close)
	start, end := strconv.FormatInt(now.Add(-time.Hour).UnixNano(), 10), strconv.FormatInt(now.Add(time.Minute).UnixNano(), 10)
	for _, bc := range []struct {
		name, query, step, limit string
		instant                  bool
	}{
		{"explore_logs", `{service_name="svc-1"}`, "2000ms", "1000", false},
		{"explore_filtered", `{service_name="svc-1"} |= "status=503"`, "2000ms", "1000", false},
		// The newest 100 lines of a service with a word, as the side by
		// side benchmark asks.
		{"newest_100_filtered", `{service_name="svc-1"} |= "status=503"`, "2000ms", "100", false},
		{"logs_volume", `sum by (level, detected_level) (count_over_time({service_name="svc-1"} | drop __error__[1m]))`, "60000ms", "1000", false},
		{"count_all", `sum(count_over_time({service_name=~".+"}[1h]))`, "60000ms", "1000", false},
		// The side by side benchmark's count of all records: an instant
		// query whose range holds every record.
		{"count_all_instant", `sum(count_over_time({service_name=~".+"}[2h]))`, "", "", true},
		{"logfmt_metric", `sum by (status) (count_over_time({service_name=~"svc-.*"} | logfmt | took > 200ms [1m]))`, "60000ms", "1000", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := url.Values{"query": {bc.query}, "start": {start}, "end": {end}, "step": {bc.step}, "limit": {bc.limit}, "direction": {"backward"}}
			u := srv.URL + "/loki/api/v1/query_range?" + v.Encode()
			if bc.instant {
				u = srv.URL + "/loki/api/v1/query?" + url.Values{"query": {bc.query}, "time": {end}}.Encode()
			}
			for b.Loop() {
				resp, err := http.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("HTTP %d", resp.StatusCode)
				}
			}
		})
	}
}
