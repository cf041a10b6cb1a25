// Command vigil-clusterbench measures what a three-node vigil cluster on
// embedded Raft costs, with real processes on loopback: silence write
// latency through the leader and through a follower (which forwards to the
// leader), the failover time over repeated kill -9 of the leader, and the
// CPU and memory of an idle follower next to a single-node vigil. It
// prints a report in Markdown (`make bench-cluster`; docs/performance.md).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// The targets of the silence writes.
const (
	targetLeader   = "cluster, to the leader"
	targetFollower = "cluster, to a follower (forwarded)"
	targetSingle   = "single node (no cluster)"
)

type options struct {
	vigil       string
	workDir     string
	writes      int
	concurrency int
	kills       int
	idle        time.Duration
	out         string
	keep        bool
}

func main() {
	var o options
	flag.StringVar(&o.vigil, "vigil", "bin/vigil", "vigil binary")
	flag.StringVar(&o.workDir, "work-dir", "", "where the nodes' data directories and logs go (default: a new temporary directory, removed at the end unless -keep)")
	flag.IntVar(&o.writes, "writes", 500, "silence writes per target and mode (leader/follower/single node, sequential/concurrent)")
	flag.IntVar(&o.concurrency, "concurrency", 8, "writers in the concurrent mode")
	flag.IntVar(&o.kills, "kills", 20, "leader kills in the failover phase")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "how long the idle cost is measured")
	flag.StringVar(&o.out, "out", "", "also write the report to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (data and logs)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-clusterbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	bin, err := filepath.Abs(o.vigil)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("vigil binary: %w (make build-go)", err)
	}
	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "vigil-clusterbench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	logw := io.Writer(os.Stderr)
	began := time.Now()
	r := &report{
		started: began.UTC(), cpus: runtime.NumCPU(), loadBefore: loadAvg(),
		writes: o.writes, concurrency: o.concurrency, idle: o.idle,
	}

	c, err := newCluster(bin, work, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	// The single node runs beside the cluster from the start, so that both
	// see the same machine, the same age and the same writes.
	single, err := newSingle(bin, work)
	if err != nil {
		return err
	}
	defer single.stop(30 * time.Second)
	if err := c.startAll(); err != nil {
		return err
	}
	if err := single.waitReady(2 * time.Minute); err != nil {
		return fmt.Errorf("single node: %w", err)
	}
	st, err := c.settle(time.Minute, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(logw, "cluster up: leader %s, term %d\n", st.Leader, st.Term)
	r.termStart = st.Term

	// 1. Silence writes. The leader and a follower are found again before
	// each row, since leadership may move on a loaded machine.
	for _, conc := range []int{1, o.concurrency} {
		for _, target := range []string{targetLeader, targetFollower, targetSingle} {
			url := single.httpURL
			if target != targetSingle {
				st, err := c.settle(time.Minute, nil)
				if err != nil {
					return err
				}
				url = c.byID(st.Leader).httpURL
				if target == targetFollower {
					url = c.followers(st.Leader)[0].httpURL
				}
			}
			lat, retried, errs, err := writeSilences(url, o.writes, conc)
			if err != nil {
				return fmt.Errorf("silence writes, %s: %w", target, err)
			}
			if len(errs) > 0 {
				fmt.Fprintf(logw, "%d attempts failed (%s, %d writers), the first: %v\n", len(errs), target, conc, errs[0])
			}
			fmt.Fprintf(logw, "writes %s, %d writers: p50 %v p99 %v, %d retried\n", target, conc, quantile(lat, 0.5), quantile(lat, 0.99), retried)
			r.writeRows = append(r.writeRows, writeRow{target: target, concurrency: conc, lat: lat, retried: retried})
		}
	}

	// Silence reads, once the writes have made some.
	for _, what := range []string{readOne, readList} {
		for _, target := range []string{targetLeader, targetFollower, targetSingle} {
			url := single.httpURL
			if target != targetSingle {
				st, err := c.settle(time.Minute, nil)
				if err != nil {
					return err
				}
				url = c.byID(st.Leader).httpURL
				if target == targetFollower {
					url = c.followers(st.Leader)[0].httpURL
				}
			}
			lat, err := readSilences(url, what, o.writes)
			if err != nil {
				return fmt.Errorf("silence reads, %s: %w", target, err)
			}
			fmt.Fprintf(logw, "reads %s, %s: p50 %v p99 %v\n", what, target, quantile(lat, 0.5), quantile(lat, 0.99))
			r.readRows = append(r.readRows, readRow{target: target, what: what, lat: lat})
		}
	}

	// 3. Idle cost, before the kills, while the processes are as young as
	// they are after a normal start. A moment to let the writes' work end.
	time.Sleep(10 * time.Second)
	st, err = c.settle(time.Minute, nil)
	if err != nil {
		return err
	}
	r.termAfterWrites = st.Term
	procs := []idleTarget{}
	for _, n := range c.nodes {
		role := "follower"
		if n.id == st.Leader {
			role = "leader"
		}
		procs = append(procs, idleTarget{name: n.id + " (" + role + ")", pid: n.p.pid()})
	}
	procs = append(procs, idleTarget{name: "single node", pid: single.p.pid()})
	fmt.Fprintf(logw, "idle for %v\n", o.idle)
	if r.idleRows, err = measureIdle(procs, o.idle); err != nil {
		return err
	}
	r.loadIdle = loadAvg()

	// 2. Failover.
	for i := range o.kills {
		f, err := c.failover(logw)
		if err != nil {
			return fmt.Errorf("failover round %d: %w", i+1, err)
		}
		fmt.Fprintf(logw, "round %d: killed %s (term %d): new leader %s (term %d) agreed after %v, all ready after %v; rejoined and applied index %d in %v\n",
			i+1, f.killed, f.oldTerm, f.newLeader, f.newTerm, f.elected.Round(time.Millisecond), f.ready.Round(time.Millisecond), f.caughtUpTo, f.rejoin.Round(time.Millisecond))
		r.failovers = append(r.failovers, f)
	}
	r.loadAfter = loadAvg()
	r.took = time.Since(began)

	text := r.markdown(o)
	fmt.Print(text)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(text), 0o644)
	}
	return nil
}
