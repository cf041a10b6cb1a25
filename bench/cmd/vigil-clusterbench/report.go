package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/bench/internal/procfs"
)

type idleTarget struct {
	name string
	pid  int
}

// idleRow is one process over the idle window: CPU seconds used, and its
// RSS sampled every second (median and largest).
type idleRow struct {
	name              string
	cpu               float64
	rssMedian, rssMax int64
}

// measureIdle samples every process together over d, so that all see the
// same machine.
func measureIdle(ps []idleTarget, d time.Duration) ([]idleRow, error) {
	cpu0 := make([]float64, len(ps))
	rss := make([][]int64, len(ps))
	for i, p := range ps {
		c, err := procfs.CPUSeconds(p.pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		cpu0[i] = c
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i, p := range ps {
			b, err := procfs.StatusBytes(p.pid, "VmRSS")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			rss[i] = append(rss[i], b)
		}
		time.Sleep(time.Second)
	}
	rows := make([]idleRow, len(ps))
	for i, p := range ps {
		c, err := procfs.CPUSeconds(p.pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		s := slices.Clone(rss[i])
		slices.Sort(s)
		rows[i] = idleRow{name: p.name, cpu: c - cpu0[i], rssMedian: s[len(s)/2], rssMax: s[len(s)-1]}
	}
	return rows, nil
}

type writeRow struct {
	target      string
	concurrency int
	lat         []time.Duration
	retried     int
}

type report struct {
	started                         time.Time
	took                            time.Duration
	cpus                            int
	loadBefore, loadIdle, loadAfter string
	writes, concurrency             int
	termStart, termAfterWrites      uint64
	idle                            time.Duration
	writeRows                       []writeRow
	readRows                        []readRow
	idleRows                        []idleRow
	failovers                       []failoverRound
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func (r *report) markdown(o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %d CPUs, load average %s before, %s after the idle window, %s at the end; took %v.\n\n",
		r.started.Format(time.RFC3339), r.cpus, r.loadBefore, r.loadIdle, r.loadAfter, r.took.Round(time.Second))

	fmt.Fprintf(&b, "Silence writes (POST /api/v2/silences, %d per row; the Raft term went from %d to %d during them; "+
		"a write that failed was tried again every %v and counts from its first attempt):\n\n",
		r.writes, r.termStart, r.termAfterWrites, retryEvery)
	b.WriteString("| target | writers | p50 | p90 | p99 | max | writes/s | retried |\n|---|---|---|---|---|---|---|---|\n")
	for _, w := range r.writeRows {
		var sum time.Duration
		for _, d := range w.lat {
			sum += d
		}
		// Writes per second from the latencies: each writer runs its
		// writes back to back.
		rate := float64(len(w.lat)) / (sum.Seconds() / float64(w.concurrency))
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.0f | %d |\n", w.target, w.concurrency,
			ms(quantile(w.lat, 0.5)), ms(quantile(w.lat, 0.9)), ms(quantile(w.lat, 0.99)), ms(quantile(w.lat, 1)), rate, w.retried)
	}

	fmt.Fprintf(&b, "\nSilence reads (%d per row, one after the other, after the writes):\n\n", r.writes)
	b.WriteString("| target | read | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n")
	for _, rr := range r.readRows {
		// A read is served where it is sent; nothing is forwarded.
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", strings.TrimSuffix(rr.target, " (forwarded)"), rr.what,
			ms(quantile(rr.lat, 0.5)), ms(quantile(rr.lat, 0.9)), ms(quantile(rr.lat, 0.99)), ms(quantile(rr.lat, 1)))
	}

	var el, rd, rj []time.Duration
	for _, f := range r.failovers {
		el, rd, rj = append(el, f.elected), append(rd, f.ready), append(rj, f.rejoin)
	}
	fmt.Fprintf(&b, "\nFailover over %d kill -9 of the leader (polled every %v):\n\n", len(r.failovers), pollEvery)
	b.WriteString("| from the kill until | min | median | p90 | max |\n|---|---|---|---|---|\n")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name,
			ms(quantile(ds, 0)), ms(quantile(ds, 0.5)), ms(quantile(ds, 0.9)), ms(quantile(ds, 1)))
	}
	row("both survivors name the same new leader, higher term", el)
	row("... and both answer /-/ready 200", rd)
	row("(restart of the killed node until caught up)", rj)

	var clusterSilences, singleSilences int
	for _, w := range r.writeRows {
		if strings.HasPrefix(w.target, "cluster") {
			clusterSilences += len(w.lat)
		} else {
			singleSilences += len(w.lat)
		}
	}
	fmt.Fprintf(&b, "\nIdle for %v (no rules, no ingest; the cluster holds %d active silences, the single node %d), all processes sampled together:\n\n",
		r.idle, clusterSilences, singleSilences)
	b.WriteString("| process | CPU seconds | CPU % of one core | RSS median | RSS max |\n|---|---|---|---|---|\n")
	for _, i := range r.idleRows {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f%% | %s | %s |\n", i.name, i.cpu, 100*i.cpu/r.idle.Seconds(), mib(i.rssMedian), mib(i.rssMax))
	}
	return b.String()
}
