package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// query is one row of the table: a request (path may vary by iteration, as
// trace ids do) and the target for it.
type query struct {
	name   string
	path   func(i int) string
	target time.Duration
	count  func(body []byte) string // result size
}

func runQueries(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:7070", "vigil's HTTP address")
	dataDir := fs.String("data-dir", "", "data directory gen filled, for the trace ids and values it noted (else they are found through the API)")
	n := fs.Int("n", 50, "timed requests per query")
	warm := fs.Int("warmup", 3, "untimed requests per query first")
	only := fs.String("only", "", "run only the queries whose name contains this")
	_ = fs.Parse(args)
	client := &http.Client{Timeout: 2 * time.Minute}
	ctx := context.Background()

	var m *meta
	if *dataDir != "" {
		var err error
		if m, err = readMeta(*dataDir); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	} else {
		var err error
		if m, err = discover(ctx, client, *base); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if len(m.TraceIDs) == 0 || len(m.Services) == 0 {
		return errors.New("run: no trace ids or services to query")
	}
	qs := buildQueries(m)
	fmt.Printf("Data: %d spans and %d log records over %s ending %s, %d services. %d timed requests per query after %d warm-ups, sequential.\n\n",
		m.Spans, m.Logs, m.Window, m.End.UTC().Format(time.RFC3339), len(m.Services), *n, *warm)
	fmt.Println("| query | p50 | p90 | p99 | max | result (last answer) | target (p99) | met |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	failed := 0
	for _, q := range qs {
		if *only != "" && !strings.Contains(q.name, *only) {
			continue
		}
		lat, body, err := measure(ctx, client, *base, q, *warm, *n)
		if err != nil {
			fmt.Printf("| %s | error: %v | | | | | | |\n", q.name, err)
			failed++
			continue
		}
		p99 := pct(lat, 0.99)
		met := "yes"
		if p99 >= q.target {
			met = "**no**"
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s, %s | < %s | %s |\n", q.name,
			ms(pct(lat, 0.5)), ms(pct(lat, 0.9)), ms(p99), ms(lat[len(lat)-1]),
			q.count(body), kib(len(body)), ms(q.target), met)
	}
	if failed > 0 {
		return fmt.Errorf("run: %d queries failed", failed)
	}
	return nil
}

func measure(ctx context.Context, c *http.Client, base string, q query, warm, n int) ([]time.Duration, []byte, error) {
	var lat []time.Duration
	var body []byte
	for i := range warm + n {
		u := base + q.path(i)
		t0 := time.Now()
		b, err := get(ctx, c, u)
		d := time.Since(t0)
		if err != nil {
			return nil, nil, err
		}
		if i >= warm {
			lat = append(lat, d)
		}
		body = b
	}
	slices.Sort(lat)
	return lat, body, nil
}

func get(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %.200s", u, resp.StatusCode, b)
	}
	return b, nil
}

// pct is the nearest-rank percentile of sorted latencies (with 50 samples
// p99 is the maximum).
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f ms", f)
	case f >= 10:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.2f ms", f)
}

func kib(n int) string {
	if n < 10<<10 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/1024)
}

func buildQueries(m *meta) []query {
	end := m.End.Add(time.Second) // just after the newest generated data
	endMicros := strconv.FormatInt(end.UnixMicro(), 10)
	svc := m.Services[0]
	tags := func(kv [2]string) string {
		b, _ := json.Marshal(map[string]string{kv[0]: kv[1]})
		return url.QueryEscape(string(b))
	}
	qs := []query{{
		name:   "trace by id (GET /api/traces/{id}, ids spread over the window)",
		path:   func(i int) string { return "/api/traces/" + m.TraceIDs[i%len(m.TraceIDs)] },
		target: 50 * time.Millisecond,
		count:  countTraces,
	}}
	searches := []struct {
		label, params string
	}{
		{fmt.Sprintf("service=%s, common tag %s=%s", svc, m.CommonTag[0], m.CommonTag[1]),
			"service=" + url.QueryEscape(svc) + "&tags=" + tags(m.CommonTag)},
		{fmt.Sprintf("service=%s, rare tag %s=%s", svc, m.RareTag[0], m.RareTag[1]),
			"service=" + url.QueryEscape(svc) + "&tags=" + tags(m.RareTag)},
		{fmt.Sprintf("all services, rare tag %s=%s", m.CustomerTag[0], m.CustomerTag[1]),
			"tags=" + tags(m.CustomerTag)},
	}
	for _, lookback := range []string{"1h", "24h"} {
		for _, s := range searches {
			p := "?" + s.params + "&limit=20&end=" + endMicros + "&lookback=" + lookback
			qs = append(qs,
				query{name: "search " + lookback + " /api/traces: " + s.label, path: fixed("/api/traces" + p),
					target: 500 * time.Millisecond, count: countTraces},
				query{name: "search " + lookback + " /api/trace-summaries: " + s.label, path: fixed("/api/trace-summaries" + p),
					target: 500 * time.Millisecond, count: countData("traces")},
			)
		}
	}
	start := url.QueryEscape(end.Add(-m.window()).UTC().Format(time.RFC3339))
	for _, tok := range []struct{ label, token string }{
		{"rare token", m.RareToken}, {"common token", m.CommonToken}, {"absent token", m.AbsentToken},
	} {
		p := "?q=" + url.QueryEscape(tok.token) + "&start=" + start
		qs = append(qs,
			query{name: fmt.Sprintf("logs %s: %s %q", m.Window, tok.label, tok.token), path: fixed("/api/logs" + p + "&limit=100"),
				target: time.Second, count: countData("records")},
			query{name: fmt.Sprintf("logs %s histogram: %s %q", m.Window, tok.label, tok.token), path: fixed("/api/logs/histogram" + p),
				target: time.Second, count: countHistogram},
		)
	}
	endSec := strconv.FormatInt(end.Unix(), 10)
	qs = append(qs,
		query{name: "services overview 1h (GET /api/red/services)", path: fixed("/api/red/services?end=" + endSec),
			target: 300 * time.Millisecond, count: countRED},
		query{name: "services overview 24h (GET /api/red/services)",
			path:   fixed("/api/red/services?end=" + endSec + "&start=" + strconv.FormatInt(end.Add(-24*time.Hour).Unix(), 10)),
			target: 300 * time.Millisecond, count: countRED},
	)
	return qs
}

func fixed(p string) func(int) string { return func(int) string { return p } }

// countTraces reads a Jaeger answer of whole traces.
func countTraces(b []byte) string {
	var r struct {
		Data []struct {
			Spans []json.RawMessage `json:"spans"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &r) != nil {
		return "?"
	}
	spans := 0
	for _, t := range r.Data {
		spans += len(t.Spans)
	}
	return fmt.Sprintf("%d traces, %d spans", len(r.Data), spans)
}

func countData(unit string) func([]byte) string {
	return func(b []byte) string {
		var r struct {
			Data []json.RawMessage `json:"data"`
		}
		if json.Unmarshal(b, &r) != nil {
			return "?"
		}
		return fmt.Sprintf("%d %s", len(r.Data), unit)
	}
}

func countHistogram(b []byte) string {
	var r struct {
		Data struct {
			Total   int64             `json:"total"`
			Buckets []json.RawMessage `json:"buckets"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &r) != nil {
		return "?"
	}
	return fmt.Sprintf("%d matches in %d bins", r.Data.Total, len(r.Data.Buckets))
}

func countRED(b []byte) string {
	var r struct {
		Data struct {
			Services []json.RawMessage `json:"services"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &r) != nil {
		return "?"
	}
	return fmt.Sprintf("%d services", len(r.Data.Services))
}

// discover finds services and trace ids through the API when gen's notes
// are not at hand; the tokens and tags are gen's defaults.
func discover(ctx context.Context, c *http.Client, base string) (*meta, error) {
	m := &meta{
		End: time.Now(), Window: "24h",
		RareTag: [2]string{"feature_flag.variant", "canary"}, CommonTag: [2]string{"http.request.method", "GET"},
		CustomerTag: [2]string{"customer.id", "c-01234"},
		RareToken:   "ledger", CommonToken: "timeout", AbsentToken: "xylophone",
	}
	b, err := get(ctx, c, base+"/api/services")
	if err != nil {
		return nil, err
	}
	var svcs struct {
		Data []string `json:"data"`
	}
	if err := json.Unmarshal(b, &svcs); err != nil {
		return nil, err
	}
	m.Services = svcs.Data
	b, err = get(ctx, c, base+"/api/trace-summaries?lookback=24h&limit=200")
	if err != nil {
		return nil, err
	}
	var sums struct {
		Data []struct {
			TraceID string `json:"traceID"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &sums); err != nil {
		return nil, err
	}
	for _, s := range sums.Data {
		m.TraceIDs = append(m.TraceIDs, s.TraceID)
	}
	fmt.Fprintf(os.Stderr, "run: found %d services and %d trace ids through the API\n", len(m.Services), len(m.TraceIDs))
	return m, nil
}
