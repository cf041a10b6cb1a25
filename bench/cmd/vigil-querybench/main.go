// Command vigil-querybench measures vigil's query APIs on a large store:
//
//	vigil-querybench gen --data-dir D [--spans 10000000 --logs 10000000 --services 50 --window 24h]
//	vigil-querybench run --url http://127.0.0.1:PORT [--data-dir D] [--n 50]
//	vigil-querybench red-sql --data-dir D
//	vigil-querybench profile --data-dir D --only 'services overview 24h'
//	vigil-querybench peer --vigil URL --victorialogs URL --data-dir D [--n 50]
//
// gen writes spans and log records spread over the window straight into the
// stores that `vigil server --data-dir D` opens, feeding the span metrics
// recorder as the server does, so the TSDB holds the RED series too. run
// times each query sequentially and prints a Markdown table. red-sql times
// the alternative to recorded span metrics: RED computed by SQL over the
// stored spans. bench/query.sh runs those three. profile serves the query
// APIs in process over the same stores and writes a CPU profile of chosen
// queries, since vigil server does not serve pprof. peer times the same log
// searches against vigil's Loki API and VictoriaLogs, which gen
// --victorialogs filled with the same log records.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = runGen(os.Args[2:])
	case "run":
		err = runQueries(os.Args[2:])
	case "red-sql":
		err = runRedSQL(os.Args[2:])
	case "profile":
		err = runProfile(os.Args[2:])
	case "peer":
		err = runPeer(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-querybench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vigil-querybench gen|run|red-sql|profile|peer [flags] (-h for each command's flags)")
	os.Exit(2)
}

// metaFile is what gen leaves in the data directory for run and red-sql:
// what it wrote and values the queries can look for.
const metaFile = "querybench.json"

type meta struct {
	// End is the newest generated time; data covers [End-Window, End].
	End         time.Time `json:"end"`
	Window      string    `json:"window"`
	Spans       int64     `json:"spans"`
	Logs        int64     `json:"logs"`
	Services    []string  `json:"services"`
	TraceIDs    []string  `json:"trace_ids"` // spread over the window
	RareTag     [2]string `json:"rare_tag"`
	CommonTag   [2]string `json:"common_tag"`
	CustomerTag [2]string `json:"customer_tag"`
	RareToken   string    `json:"rare_token"`
	CommonToken string    `json:"common_token"`
	AbsentToken string    `json:"absent_token"`
}

func (m *meta) window() time.Duration {
	d, err := time.ParseDuration(m.Window)
	if err != nil {
		return 24 * time.Hour
	}
	return d
}

func readMeta(dataDir string) (*meta, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, metaFile))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", metaFile, err)
	}
	return &m, nil
}

func writeMeta(dataDir string, m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, metaFile), append(b, '\n'), 0o644)
}

// peakRSS is the process's peak resident set (VmHWM) in MiB, or -1 where
// /proc is not there.
func peakRSS() float64 { return procStatusMiB("VmHWM:") }

func procStatusMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if n, _ := fmt.Sscanf(line, field+" %f kB", &kb); n == 1 {
			return kb / 1024
		}
	}
	return -1
}

// dirBytes sums the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
