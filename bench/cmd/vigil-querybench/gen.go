package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/loadgen"
	"github.com/vigil-observability/vigil/internal/spanmetrics"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

type genConfig struct {
	dataDir              string
	spans, logs          int64
	services, operations int
	window               time.Duration
	batch, spansPerTrace int
	rareEvery, ids       int
	seed                 uint64
	flushEvery           time.Duration
	redSQL               bool
	cpuProfile           string
	victoriaLogs         string
}

func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	var c genConfig
	fs.StringVar(&c.dataDir, "data-dir", "", "vigil data directory to fill (must not hold data yet)")
	fs.Int64Var(&c.spans, "spans", 10_000_000, "spans to write")
	fs.Int64Var(&c.logs, "logs", 10_000_000, "log records to write")
	fs.IntVar(&c.services, "services", 50, "distinct service.name values")
	fs.IntVar(&c.operations, "operations", 8, "server operations per service")
	fs.DurationVar(&c.window, "window", 24*time.Hour, "the data covers [now-window, now]")
	fs.IntVar(&c.batch, "batch", 1000, "spans or log records per write, as an exporter's batch")
	fs.IntVar(&c.spansPerTrace, "spans-per-trace", 5, "spans per trace (one server span, the rest client spans)")
	fs.IntVar(&c.rareEvery, "rare-every", 10_000, "one span in this many carries the rare tag, one log body the rare token")
	fs.IntVar(&c.ids, "ids", 200, "trace ids to note for run, spread over the window")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed")
	fs.DurationVar(&c.flushEvery, "flush-every", time.Minute, "simulated time between span metrics flushes")
	fs.BoolVar(&c.redSQL, "red-sql", false, "afterwards, time RED computed by SQL over the stored spans (as red-sql)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the generation here")
	fs.StringVar(&c.victoriaLogs, "victorialogs", "", "also send every log batch to the VictoriaLogs at this URL (/insert/jsonline), for the side-by-side in peer")
	_ = fs.Parse(args)
	if c.dataDir == "" {
		return errors.New("gen: --data-dir is required")
	}
	if c.batch < c.spansPerTrace || c.spansPerTrace < 1 || c.services < 1 || c.window <= 0 {
		return errors.New("gen: need --batch >= --spans-per-trace >= 1, --services >= 1 and a positive --window")
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, metaFile)); err == nil {
		return fmt.Errorf("gen: %s already holds generated data; use a fresh directory", c.dataDir)
	}
	for _, sub := range []string{"tsdb", "spanlogs"} {
		if entries, _ := os.ReadDir(filepath.Join(c.dataDir, sub)); len(entries) > 0 {
			return fmt.Errorf("gen: %s is not empty; use a fresh directory", filepath.Join(c.dataDir, sub))
		}
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	m, err := generate(c)
	if err != nil {
		return err
	}
	if c.redSQL {
		return redSQL(c.dataDir, m.End, m.window(), 5)
	}
	return nil
}

// batch is one exporter request's worth of data at simulated time t.
type batch struct {
	t     time.Time
	spans bool
	td    ptrace.Traces // when spans
	ld    plog.Logs     // otherwise
	n     int
}

// fakeClock follows the generated time, for the span metrics recorder.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

func serviceNames(n int) []string {
	// Names of the kind a small company's services have, made unique.
	stems := []string{"frontend", "checkout", "payment", "inventory", "shipping", "catalog", "search", "auth",
		"cart", "pricing", "ledger-api", "notify", "reviews", "ads", "fraud", "accounts", "media", "gateway"}
	out := make([]string, n)
	for i := range out {
		out[i] = stems[i%len(stems)]
		if k := i / len(stems); k > 0 {
			out[i] = fmt.Sprintf("%s-%d", out[i], k+1)
		}
	}
	return out
}

func generate(c genConfig) (*meta, error) {
	ctx := context.Background()
	end := time.Now().Truncate(time.Second)
	start := end.Add(-c.window)
	svcs := serviceNames(c.services)

	tracesPerBatch := c.batch / c.spansPerTrace
	spansPerBatch := int64(tracesPerBatch * c.spansPerTrace)
	nSpanBatches := (c.spans + spansPerBatch - 1) / spansPerBatch
	nLogBatches := (c.logs + int64(c.batch) - 1) / int64(c.batch)
	spanEvery := time.Duration(0)
	if nSpanBatches > 0 {
		spanEvery = c.window / time.Duration(nSpanBatches)
	}
	logEvery := time.Duration(0)
	if nLogBatches > 0 {
		logEvery = c.window / time.Duration(nLogBatches)
	}
	fmt.Printf("gen: %d spans in %d batches (one every %v), %d log records in %d batches (one every %v), %d services x %d operations, from %s to %s\n",
		c.spans, nSpanBatches, spanEvery, c.logs, nLogBatches, logEvery, len(svcs), c.operations,
		start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))

	if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
		return nil, err
	}
	// The same directories and options vigil server uses (cmd/vigil/server.go).
	tsdb, err := embedded.OpenMetrics(embedded.MetricsOptions{Dir: filepath.Join(c.dataDir, "tsdb")})
	if err != nil {
		return nil, err
	}
	store, err := embedded.OpenSpanLogStore(ctx, embedded.SpanLogOptions{Dir: filepath.Join(c.dataDir, "spanlogs")})
	if err != nil {
		_ = tsdb.Close()
		return nil, err
	}
	clock := &fakeClock{}
	clock.Set(start)
	rec, err := spanmetrics.New(spanmetrics.Options{Appendable: tsdb, Now: clock.Now})
	if err != nil {
		_ = store.Close()
		_ = tsdb.Close()
		return nil, err
	}

	m := &meta{
		End: end, Window: c.window.String(), Services: svcs,
		RareTag:     [2]string{loadgen.RareTagKey, loadgen.RareTagValue},
		CommonTag:   [2]string{"http.request.method", "GET"},
		CustomerTag: [2]string{"customer.id", "c-01234"},
		RareToken:   loadgen.RareLogToken, CommonToken: "timeout", AbsentToken: "xylophone",
	}
	idEvery := max(1, nSpanBatches/int64(max(1, c.ids)))

	// The producer builds batches in time order, spans and logs interleaved,
	// while the consumer writes them: generation and storage overlap.
	batches := make(chan batch, 4)
	var genBusy atomic.Int64 // ns spent generating
	go func() {
		defer close(batches)
		opts := loadgen.Options{Services: svcs, Operations: c.operations, RareEvery: c.rareEvery}
		opts.Spread = spanEvery
		gt := loadgen.NewWithOptions(c.seed, opts)
		opts.Spread = logEvery
		gl := loadgen.NewWithOptions(c.seed+1, opts)
		var si, li int64
		var spansLeft, logsLeft = c.spans, c.logs
		var lastIDs []pcommon.TraceID
		for si < nSpanBatches || li < nLogBatches {
			t0 := time.Now()
			ts := start.Add(time.Duration(si+1) * spanEvery)
			tl := start.Add(time.Duration(li+1) * logEvery)
			var b batch
			if si < nSpanBatches && (li >= nLogBatches || !tl.Before(ts)) {
				nt := min(int64(tracesPerBatch), (spansLeft+int64(c.spansPerTrace)-1)/int64(c.spansPerTrace))
				td, ids := gt.Traces(int(nt), c.spansPerTrace, ts)
				if si%idEvery == 0 && len(m.TraceIDs) < c.ids {
					m.TraceIDs = append(m.TraceIDs, hex.EncodeToString(ids[0][:]))
				}
				lastIDs = ids
				b = batch{t: ts, spans: true, td: td, n: td.SpanCount()}
				spansLeft -= int64(b.n)
				si++
			} else {
				n := min(int64(c.batch), logsLeft)
				b = batch{t: tl, ld: gl.Logs(int(n), tl, lastIDs), n: int(n)}
				logsLeft -= n
				li++
			}
			genBusy.Add(int64(time.Since(t0)))
			batches <- b
		}
	}()

	var vl *vlSink
	if c.victoriaLogs != "" {
		vl = newVLSink(c.victoriaLogs)
	}
	var (
		spansDone, logsDone  int64
		writeBusy, flushBusy time.Duration
		nextFlush            = start.Add(c.flushEvery)
		wall0                = time.Now()
		lastReport           = wall0
	)
	flush := func(at time.Time) error {
		clock.Set(at)
		t0 := time.Now()
		err := rec.Flush(ctx)
		flushBusy += time.Since(t0)
		return err
	}
	var genErr error
	for b := range batches {
		for !nextFlush.After(b.t) {
			if err := flush(nextFlush); err != nil && genErr == nil {
				genErr = err
			}
			nextFlush = nextFlush.Add(c.flushEvery)
		}
		clock.Set(b.t)
		t0 := time.Now()
		if b.spans {
			if err := store.WriteTraces(ctx, b.td); err != nil {
				genErr = err
				break
			}
			writeBusy += time.Since(t0)
			rec.RecordSpans(b.td)
			spansDone += int64(b.n)
		} else {
			if err := store.WriteLogs(ctx, b.ld); err != nil {
				genErr = err
				break
			}
			writeBusy += time.Since(t0)
			rec.RecordLogs(b.ld)
			if vl != nil { // after the recorder: ld is VictoriaLogs' alone now
				vl.in <- b.ld
			}
			logsDone += int64(b.n)
		}
		if now := time.Now(); now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			el := now.Sub(wall0).Seconds()
			fmt.Printf("gen: %5.0fs  spans %d/%d  logs %d/%d  at %s  %.0f items/s  rss %.0f MiB (peak %.0f)\n",
				el, spansDone, c.spans, logsDone, c.logs, b.t.UTC().Format("01-02 15:04"),
				float64(spansDone+logsDone)/el, procStatusMiB("VmRSS:"), peakRSS())
		}
	}
	if vl != nil {
		t0 := time.Now()
		if err := vl.close(ctx); err != nil && genErr == nil {
			genErr = err
		}
		fmt.Printf("gen: sent %d log records to VictoriaLogs (%v sending, %v waiting for the last ones and force_flush)\n",
			vl.sent, vl.busy.Round(time.Second), time.Since(t0).Round(time.Second))
	}
	if genErr != nil {
		for range batches { // let the producer finish
		}
		_ = store.Close()
		_ = tsdb.Close()
		return nil, genErr
	}
	if err := flush(end.Add(time.Second)); err != nil {
		fmt.Println("gen: last span metrics flush:", err)
	}
	loadWall := time.Since(wall0)
	t0 := time.Now()
	if err := store.Close(); err != nil {
		_ = tsdb.Close()
		return nil, err
	}
	closeStore := time.Since(t0)
	t0 = time.Now()
	if err := tsdb.Close(); err != nil {
		return nil, err
	}
	closeTSDB := time.Since(t0)
	m.Spans, m.Logs = spansDone, logsDone
	if err := writeMeta(c.dataDir, m); err != nil {
		return nil, err
	}
	total := time.Since(wall0)
	slBytes := dirBytes(filepath.Join(c.dataDir, "spanlogs"))
	tsBytes := dirBytes(filepath.Join(c.dataDir, "tsdb"))
	var ru = cpuSeconds()
	fmt.Printf("gen: wrote %d spans and %d log records in %v (%v loading, then %v closing the span/log store and %v the TSDB)\n",
		spansDone, logsDone, total.Round(time.Second), loadWall.Round(time.Second), closeStore.Round(time.Second), closeTSDB.Round(time.Second))
	fmt.Printf("gen: throughput %.0f items/s wall (%.0f spans/s + %.0f logs/s), %.0f items per CPU-second; %d CPU(s)\n",
		float64(spansDone+logsDone)/total.Seconds(), float64(spansDone)/total.Seconds(), float64(logsDone)/total.Seconds(),
		float64(spansDone+logsDone)/ru, runtime.GOMAXPROCS(0))
	fmt.Printf("gen: busy time: generating %v (in parallel), writing spans+logs %v, span metrics flushes %v\n",
		time.Duration(genBusy.Load()).Round(time.Second), writeBusy.Round(time.Second), flushBusy.Round(time.Second))
	fmt.Printf("gen: on disk: spanlogs %.1f MiB (%.1f bytes per span or log record), tsdb %.1f MiB; peak RSS %.0f MiB\n",
		float64(slBytes)/(1<<20), float64(slBytes)/float64(max(1, spansDone+logsDone)), float64(tsBytes)/(1<<20), peakRSS())
	return m, nil
}
