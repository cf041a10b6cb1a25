package profilescrape

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/vigil-observability/vigil/internal/ingest/pyroscope"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// discardWriter checks nothing and stores nothing: the scrape's own cost.
type discardWriter struct{}

func (discardWriter) Write(context.Context, pyroscope.Upload) error { return nil }

// BenchmarkScrapeMemoryProfile is one memory profile pulled over HTTP,
// parsed, its delta taken against the previous scrape, and written: into
// nothing (the scrape's own cost) or, through the push path's Writer,
// durably into the embedded store. The target answers the same profile
// every time, so that making it is not counted: a steady state where
// what is in use stays and nothing more is allocated. The profile is
// either the one net/http/pprof takes of this process at the start
// (small), or a service's of 2,000 stacks of 20 frames from 3,000
// functions (large).
func BenchmarkScrapeMemoryProfile(b *testing.B) {
	for _, size := range []string{"small", "large"} {
		for _, store := range []string{"none", "embedded"} {
			b.Run("profile="+size+"/store="+store, func(b *testing.B) {
				benchScrapeMemory(b, size, store)
			})
		}
	}
}

func benchScrapeMemory(b *testing.B, size, store string) {
	var w ProfileWriter = discardWriter{}
	if store == "embedded" {
		st, err := embedded.OpenProfileStore(b.Context(), embedded.ProfileOptions{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		w = pyroscope.NewWriter(pyroscope.WriterOptions{Profiles: st})
	}
	s, err := New(Options{Writer: w})
	if err != nil {
		b.Fatal(err)
	}
	var heap bytes.Buffer
	if size == "small" {
		if err := pprof.Lookup("allocs").WriteTo(&heap, 0); err != nil {
			b.Fatal(err)
		}
	} else {
		stacks := map[string][]int64{}
		for st := range 2000 {
			frames := make([]string, 20)
			for j := range frames {
				frames[j] = fmt.Sprintf("github.com/acme/shop/internal/pkg%d.(*Handler).Method%d", (st*7+j*13)%40, (st*31+j*17)%3000)
			}
			stacks[strings.Join(frames, ";")] = []int64{int64(st%50 + 1), int64(st%50+1) * 4096, int64(st % 3), int64(st%3) * 4096}
		}
		if err := mkProfile(memTypes, stacks).Write(&heap); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(heap.Bytes()) }))
	defer srv.Close()
	parsed, err := profile.ParseData(heap.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := decode(b, fmt.Sprintf("- job_name: bench\n  static_configs: [{targets: [%s]}]\n", host(srv)))
	if err != nil {
		b.Fatal(err)
	}
	client, err := newClient(jobs[0])
	if err != nil {
		b.Fatal(err)
	}
	defer client.CloseIdleConnections()
	lb := labels.NewBuilder(labels.EmptyLabels())
	pts, errs := promscrape.TargetsFromGroup(&targetgroup.Group{
		Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(host(srv))}}, Source: "0",
	}, jobs[0].scrape, nil, lb)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	t := newTarget(&pool{s: s, cfg: jobs[0], client: client}, pts[0], lb)
	url := t.status[storage.ProfileMemory].url
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if result, err := t.take(b.Context(), storage.ProfileMemory, url, time.Now()); result != ResultSuccess {
			b.Fatalf("%s: %v", result, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(heap.Len()), "answer-B")
	b.ReportMetric(float64(len(parsed.Sample)), "samples")
}
