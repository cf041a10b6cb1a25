package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

const (
	crashDirEnv     = "VIGIL_SPANLOG_CRASH_DIR"
	crashSpansPerTx = 2000 // large enough that the WAL passes a checkpoint during the run
	crashLogsPerTx  = 50
	crashAcksToWait = 40
	crashCheckpoint = "4MB"
)

// crashBatch builds batch i deterministically, so that the parent knows
// what the child wrote. Every span of batch i belongs to trace crashTraceID(i).
func crashBatch(i int, base time.Time) (ptrace.Traces, plog.Logs) {
	gen := storagetest.NewSpanGen(uint64(i)+100, base.Add(time.Duration(i)*time.Second))
	td := gen.Traces(crashSpansPerTx)
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				sp.SetTraceID(crashTraceID(i))
			}
		}
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "crash")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for j := range crashLogsPerTx {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i)*time.Second + time.Duration(j))))
		lr.Body().SetStr(fmt.Sprintf("crash batch=%d record=%d", i, j))
		lr.SetTraceID(crashTraceID(i))
	}
	return td, ld
}

func crashTraceID(i int) pcommon.TraceID {
	return pcommon.TraceID{0xc7, 0xa5, 0x4, byte(i >> 8), byte(i), 15: 0x1}
}

// TestSpanLogCrashDurability checks the durability contract end to end: a
// child process writes batches and acknowledges each one on stdout only
// after WriteTraces and WriteLogs returned; the parent SIGKILLs it while it
// keeps writing, reopens the directory and must find every acknowledged
// span and record.
func TestSpanLogCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpanLogCrashDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, "VIGIL_SPANLOG_CRASH_BASE="+strconv.FormatInt(base.UnixNano(), 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		n, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue
		}
		acked, _ = strconv.Atoi(n)
		if acked+1 >= crashAcksToWait {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code, no Close
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked+1 < crashAcksToWait {
		t.Fatalf("child acknowledged only %d batches before exiting", acked+1)
	}

	s := openTestStore(t, dir)
	ctx := t.Context()
	for i := 0; i <= acked; i++ {
		td, err := s.GetTrace(ctx, crashTraceID(i))
		if err != nil {
			t.Fatalf("batch %d acknowledged but GetTrace: %v", i, err)
		}
		want, _ := crashBatch(i, base)
		if td.SpanCount() != want.SpanCount() {
			t.Errorf("batch %d: %d spans after crash, want %d", i, td.SpanCount(), want.SpanCount())
		}
		n := 0
		for _, err := range s.FindLogs(ctx, storage.LogQuery{TraceID: crashTraceID(i), Limit: 1000}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != crashLogsPerTx {
			t.Errorf("batch %d: %d logs after crash, want %d", i, n, crashLogsPerTx)
		}
	}
	t.Logf("%d acknowledged batches (%d spans) survived SIGKILL", acked+1, (acked+1)*crashSpansPerTx)
}

// crashChild writes batches until killed, acknowledging each on stdout.
func crashChild(dir string) {
	ns, _ := strconv.ParseInt(os.Getenv("VIGIL_SPANLOG_CRASH_BASE"), 10, 64)
	base := time.Unix(0, ns).UTC()
	s, err := OpenSpanLogStore(context.Background(), SpanLogOptions{
		Dir: dir, MemoryLimit: "256MB", Threads: 1, CheckpointThreshold: crashCheckpoint,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		td, ld := crashBatch(i, base)
		if err := s.WriteTraces(context.Background(), td); err != nil {
			fmt.Fprintln(os.Stderr, "child write traces:", err)
			os.Exit(2)
		}
		if err := s.WriteLogs(context.Background(), ld); err != nil {
			fmt.Fprintln(os.Stderr, "child write logs:", err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", i)
	}
}
