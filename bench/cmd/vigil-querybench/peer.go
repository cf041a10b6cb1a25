package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// peerQuery is one log search as a Grafana user asks it of each store:
// the newest lines containing a token over the whole window, of all
// services or of one.
type peerQuery struct {
	name          string
	logql, logsql string
}

func peerQueries(m *meta) []peerQuery {
	svc := m.Services[0]
	var qs []peerQuery
	for _, tok := range []struct{ label, token string }{
		{"common token", m.CommonToken}, {"rare token", m.RareToken}, {"absent token", m.AbsentToken},
	} {
		qs = append(qs,
			peerQuery{name: fmt.Sprintf("%s %q, all services", tok.label, tok.token),
				logql:  fmt.Sprintf(`{service_name=~".+"} |= %q`, tok.token),
				logsql: fmt.Sprintf(`%q`, tok.token)},
			peerQuery{name: fmt.Sprintf("%s %q, service %s", tok.label, tok.token, svc),
				logql:  fmt.Sprintf(`{service_name=%q} |= %q`, svc, tok.token),
				logsql: fmt.Sprintf(`_stream:{service_name=%q} %q`, svc, tok.token)},
		)
	}
	return qs
}

// runPeer times the same log searches against vigil's Loki API and
// VictoriaLogs' LogsQL API, both holding the log records gen wrote (gen
// --victorialogs). Requests go one at a time and alternate between the two
// systems, so that the machine's noise falls on both alike.
func runPeer(args []string) error {
	fs := flag.NewFlagSet("peer", flag.ExitOnError)
	vigilURL := fs.String("vigil", "http://127.0.0.1:7070", "vigil's HTTP address")
	vlURL := fs.String("victorialogs", "http://127.0.0.1:9428", "VictoriaLogs' HTTP address")
	dataDir := fs.String("data-dir", "", "data directory gen --victorialogs filled")
	n := fs.Int("n", 50, "timed requests per query and system")
	warm := fs.Int("warmup", 3, "untimed requests per query and system first")
	limit := fs.Int("limit", 100, "lines per answer (Grafana's default is 1000, its Explore's 100)")
	only := fs.String("only", "", "run only the queries whose name contains this")
	_ = fs.Parse(args)
	if *dataDir == "" {
		return errors.New("peer: --data-dir is required")
	}
	m, err := readMeta(*dataDir)
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	end := m.End.Add(time.Second)
	start := end.Add(-m.window())
	client := &http.Client{Timeout: 2 * time.Minute}
	ctx := context.Background()

	fmt.Printf("Data: %d log records over %s ending %s, %d services. Newest %d lines; %d timed requests per query and system after %d warm-ups, one at a time, alternating.\n\n",
		m.Logs, m.Window, m.End.UTC().Format(time.RFC3339), len(m.Services), *limit, *n, *warm)
	fmt.Println("| query | vigil p50 | vigil p95 | VictoriaLogs p50 | VictoriaLogs p95 | vigil / VictoriaLogs (p50) | lines (same in both) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, q := range peerQueries(m) {
		if *only != "" && !strings.Contains(q.name, *only) {
			continue
		}
		lv := url.Values{"query": {q.logql}, "limit": {strconv.Itoa(*limit)}, "direction": {"backward"},
			"start": {strconv.FormatInt(start.UnixNano(), 10)}, "end": {strconv.FormatInt(end.UnixNano(), 10)}}
		vv := url.Values{"query": {q.logsql}, "limit": {strconv.Itoa(*limit)},
			"start": {start.Format(time.RFC3339Nano)}, "end": {end.Format(time.RFC3339Nano)}}
		sys := []struct {
			u    string
			read func([]byte) ([]string, error)
		}{
			{*vigilURL + "/loki/api/v1/query_range?" + lv.Encode(), lokiLines},
			{*vlURL + "/select/logsql/query?" + vv.Encode(), logsqlLines},
		}
		var lat [2][]time.Duration
		var lines [2][]string
		for i := range *warm + *n {
			// Alternate which system goes first too: a request right after
			// the other's may find the CPU's caches colder.
			for j := range 2 {
				k := (i + j) % 2
				t0 := time.Now()
				b, err := get(ctx, client, sys[k].u)
				d := time.Since(t0)
				if err != nil {
					return fmt.Errorf("peer: %s: %w", q.name, err)
				}
				if i >= *warm {
					lat[k] = append(lat[k], d)
				}
				if lines[k], err = sys[k].read(b); err != nil {
					return fmt.Errorf("peer: %s: %w", q.name, err)
				}
			}
		}
		slices.Sort(lat[0])
		slices.Sort(lat[1])
		fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %d, %d (%d) |\n", q.name,
			ms(pct(lat[0], 0.5)), ms(pct(lat[0], 0.95)), ms(pct(lat[1], 0.5)), ms(pct(lat[1], 0.95)),
			float64(pct(lat[0], 0.5))/float64(pct(lat[1], 0.5)),
			len(lines[0]), len(lines[1]), common(lines[0], lines[1]))
	}
	return nil
}

// lokiLines is the log lines of a Loki query_range answer of streams.
func lokiLines(b []byte) ([]string, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Values [][2]string `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("loki answer: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("loki answer: status %q", r.Status)
	}
	var out []string
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			out = append(out, v[1])
		}
	}
	return out, nil
}

// logsqlLines is the _msg of each line of a /select/logsql/query answer,
// one JSON object per line.
func logsqlLines(b []byte) ([]string, error) {
	var out []string
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var row struct {
			Msg string `json:"_msg"`
		}
		if err := json.Unmarshal(l, &row); err != nil {
			return nil, fmt.Errorf("logsql answer: %w", err)
		}
		out = append(out, row.Msg)
	}
	return out, nil
}

// common counts the lines of a also in b. Every generated body is unique
// (it ends in a sequence number), so equal answers have all lines common.
func common(a, b []string) int {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	n := 0
	for _, s := range a {
		if in[s] {
			n++
		}
	}
	return n
}
