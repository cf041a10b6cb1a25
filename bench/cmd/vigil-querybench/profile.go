package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/vigil-observability/vigil/internal/query/httpapi"
	"github.com/vigil-observability/vigil/internal/query/jaegerapi"
	"github.com/vigil-observability/vigil/internal/query/logsapi"
	"github.com/vigil-observability/vigil/internal/query/querylimit"
	"github.com/vigil-observability/vigil/internal/query/red"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// runProfile serves the query APIs in this process, over the stores of a
// data directory opened as vigil server opens them, and times the queries
// run would with a CPU profile around the timed requests. vigil server does
// not serve pprof; this shows where a slow query's time goes.
func runProfile(args []string) error {
	fs := flag.NewFlagSet("profile", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "data directory gen filled (no server may have it open)")
	only := fs.String("only", "", "profile only the queries whose name contains this")
	n := fs.Int("n", 20, "timed requests per query")
	warm := fs.Int("warmup", 3, "untimed requests per query first")
	cpuProfile := fs.String("cpuprofile", "querybench.cpu", "CPU profile of the timed requests")
	_ = fs.Parse(args)
	if *dataDir == "" {
		return errors.New("profile: --data-dir is required")
	}
	m, err := readMeta(*dataDir)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	ctx := context.Background()
	tsdb, err := embedded.OpenMetrics(embedded.MetricsOptions{Dir: filepath.Join(*dataDir, "tsdb")})
	if err != nil {
		return err
	}
	defer tsdb.Close()
	store, err := embedded.OpenSpanLogStore(ctx, embedded.SpanLogOptions{Dir: filepath.Join(*dataDir, "spanlogs")})
	if err != nil {
		return err
	}
	defer store.Close()
	// One engine, as the server has, with the default limits.
	redSvc, err := red.New(red.Options{Spans: store, Queryable: tsdb, Engine: querylimit.NewEngine(querylimit.Options{})})
	if err != nil {
		return err
	}
	// The routes cmd/vigil/server.go mounts for these APIs.
	mux := http.NewServeMux()
	httpapi.Mount(mux, red.Routes, redSvc.Handler())
	httpapi.Mount(mux, jaegerapi.Routes, jaegerapi.NewHandler(jaegerapi.Options{Traces: store, Dependencies: redSvc}))
	httpapi.Mount(mux, logsapi.Routes, logsapi.NewHandler(logsapi.Options{Logs: store}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	f, err := os.Create(*cpuProfile)
	if err != nil {
		return err
	}
	defer f.Close()
	client := srv.Client()
	var qs []query
	for _, q := range buildQueries(m) {
		if *only == "" || strings.Contains(q.name, *only) {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return fmt.Errorf("profile: no query name contains %q", *only)
	}
	for _, q := range qs { // warm up outside the profile
		if _, _, err := measure(ctx, client, srv.URL, q, 0, *warm); err != nil {
			return err
		}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	for _, q := range qs {
		lat, _, err := measure(ctx, client, srv.URL, q, 0, *n)
		if err != nil {
			pprof.StopCPUProfile()
			return err
		}
		fmt.Printf("%s: p50 %s, p99 %s (in process)\n", q.name, ms(pct(lat, 0.5)), ms(pct(lat, 0.99)))
	}
	pprof.StopCPUProfile()
	fmt.Printf("profile: CPU profile in %s (go tool pprof -top %s)\n", *cpuProfile, *cpuProfile)
	return nil
}
