package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vigil-observability/vigil/internal/loadgen"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
)

// inUserNamespaceEnv marks a test process re-run by runAsNamespaceRoot, so
// that a second failure to be root is reported instead of recursing.
const inUserNamespaceEnv = "VIGIL_TEST_IN_USERNS"

// runAsNamespaceRoot reruns the calling test in a new user and mount
// namespace where the process is root and may mount a tmpfs of its own. It
// returns false when the caller is already root and should go on itself.
func runAsNamespaceRoot(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		return false
	}
	if os.Getenv(inUserNamespaceEnv) != "" {
		t.Fatal("not root inside the user namespace: cannot mount a tmpfs")
	}
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount",
		os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), inUserNamespaceEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a user namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in a user namespace: %v", err)
	}
	return true
}

// mountTmpfs mounts a tmpfs of size bytes on dir until the test ends.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillDisk creates path as large as the free space of its filesystem
// allows but leave bytes; with leave 0 the next write there fails with
// ENOSPC.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	size := int64(st.Bavail)*st.Bsize - leave
	if size <= 0 {
		return
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Fatalf("fallocate %d bytes: %v", size, err)
	}
	if leave > 0 {
		return
	}
	// Whatever the filesystem still hands out (metadata rounding) goes too.
	chunk := make([]byte, 4096)
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// ingestClient sends the same kinds of data as TestKill9KeepsAcknowledgedData
// and records what the server acknowledged.
type ingestClient struct {
	s    *server
	g    *loadgen.Generator
	http *http.Client
	grpc ptraceotlp.GRPCClient
	// metric names the remote_write series; at, when set, is the time the
	// data carries instead of now.
	metric string
	at     time.Time
	seq    int
	a      acked
}

func newIngestClient(t *testing.T, s *server, seed uint64, metric string) *ingestClient {
	c := &ingestClient{g: loadgen.New(seed), http: &http.Client{Timeout: time.Minute}, metric: metric}
	c.use(t, s)
	return c
}

// use points the client at s (a restarted server).
func (c *ingestClient) use(t *testing.T, s *server) {
	conn, err := grpc.NewClient(s.grpcA, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.s, c.grpc = s, ptraceotlp.NewGRPCClient(conn)
}

// refusal describes why a request was not acknowledged; ok is true for a
// retryable refusal as the ingest contract promises it.
type refusal struct {
	what string
	ok   bool
}

func httpRefusal(err error) refusal {
	var se *loadgen.StatusError
	if !errors.As(err, &se) {
		return refusal{what: err.Error()}
	}
	return refusal{
		what: fmt.Sprintf("HTTP %d (Retry-After %q): %s", se.Code, se.RetryAfter, strings.TrimSpace(se.Body)),
		ok:   se.Code == http.StatusServiceUnavailable && se.RetryAfter != "",
	}
}

// kinds of request the client sends.
const (
	sendTracesHTTP = "traces over HTTP"
	sendTracesGRPC = "traces over gRPC"
	sendLogs       = "logs over HTTP"
	sendSamples    = "remote_write"
)

var sendKinds = []string{sendTracesHTTP, sendTracesGRPC, sendLogs, sendSamples}

// send sends one request of the kind; nil means acknowledged, and then the
// data is recorded as acknowledged.
func (c *ingestClient) send(ctx context.Context, kind string) *refusal {
	now := time.Now()
	if !c.at.IsZero() {
		now = c.at
	}
	switch kind {
	case sendTracesHTTP, sendTracesGRPC:
		td, ids := c.g.Traces(tracesPerRequest, spansPerTrace, now)
		var r *refusal
		if kind == sendTracesHTTP {
			if err := loadgen.PostTraces(ctx, c.http, c.s.otlpHTTPURL, td); err != nil {
				r = ref(httpRefusal(err))
			}
		} else {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err := c.grpc.Export(cctx, ptraceotlp.NewExportRequestFromTraces(td))
			cancel()
			if err != nil {
				st := status.Convert(err)
				r = &refusal{what: fmt.Sprintf("gRPC %v: %s", st.Code(), st.Message()), ok: st.Code() == codes.Unavailable}
			}
		}
		if r == nil {
			c.a.traceIDs = append(c.a.traceIDs, ids...)
		}
		return r
	case sendLogs:
		tid := c.g.TraceID()
		if err := loadgen.PostLogs(ctx, c.http, c.s.otlpHTTPURL, c.g.Logs(logsPerRequest, now, []pcommon.TraceID{tid})); err != nil {
			return ref(httpRefusal(err))
		}
		c.a.logTraces = append(c.a.logTraces, tid)
		return nil
	default:
		c.seq++
		req := c.g.WriteRequest(c.metric, seriesPerRequest, now, prompb.Label{Name: "req", Value: strconv.Itoa(c.seq)})
		if err := loadgen.PostRemoteWrite(ctx, c.http, c.s.httpURL+"/api/v1/write", req); err != nil {
			return ref(httpRefusal(err))
		}
		c.a.rwReqs = append(c.a.rwReqs, c.seq)
		return nil
	}
}

func ref(r refusal) *refusal { return &r }

// checkAcked reports every acknowledged trace, log batch and remote_write
// request that s cannot return, and returns how many there were.
func checkAcked(t *testing.T, s *server, a *acked, metric string) int {
	t.Helper()
	return checkAckedRange(t, s, a, metric, time.Hour)
}

// checkAckedRange is checkAcked for data up to rng old.
func checkAckedRange(t *testing.T, s *server, a *acked, metric string, rng time.Duration) int {
	t.Helper()
	missing := missingAcked(t, s, a, metric, rng)
	for i, m := range missing {
		if i == 5 {
			t.Errorf("... and %d more", len(missing)-i)
			break
		}
		t.Errorf("acknowledged %s", m)
	}
	return len(missing)
}

// missingAcked lists what was acknowledged and s does not return.
func missingAcked(t *testing.T, s *server, a *acked, metric string, rng time.Duration) []string {
	t.Helper()
	var missing []string
	for _, id := range a.traceIDs {
		var tr struct {
			Data []struct {
				Spans []struct{} `json:"spans"`
			} `json:"data"`
		}
		if code := s.getJSON(t, "/api/traces/"+id.String(), &tr); code != http.StatusOK || len(tr.Data) != 1 || len(tr.Data[0].Spans) != spansPerTrace {
			missing = append(missing, fmt.Sprintf("trace %s: HTTP %d, %v", id, code, tr.Data))
		}
	}
	from := strconv.FormatInt(time.Now().Add(-rng).Unix(), 10)
	for _, id := range a.logTraces {
		var lr struct {
			Data []struct{} `json:"data"`
		}
		q := url.Values{"trace_id": {id.String()}, "limit": {"1000"}, "start": {from}}
		if code := s.getJSON(t, "/api/logs?"+q.Encode(), &lr); code != http.StatusOK || len(lr.Data) != logsPerRequest {
			missing = append(missing, fmt.Sprintf("logs of trace %s: HTTP %d, %d records, want %d", id, code, len(lr.Data), logsPerRequest))
		}
	}
	if len(a.rwReqs) == 0 {
		return missing
	}
	got := map[string]string{}
	q := fmt.Sprintf("count by (req) (last_over_time(%s[%ds]))", metric, int(rng.Seconds()))
	for _, r := range s.promQuery(t, q) {
		got[r.Metric["req"]] = fmt.Sprint(r.Value[1])
	}
	for _, id := range a.rwReqs {
		if got[strconv.Itoa(id)] != strconv.Itoa(seriesPerRequest) {
			missing = append(missing, fmt.Sprintf("remote_write request %d: %q series found, want %d", id, got[strconv.Itoa(id)], seriesPerRequest))
		}
	}
	return missing
}

// metricValue returns the value of the exposition line that starts with
// series (name and labels exactly as exposed), or -1 when there is none.
func (s *server) metricValue(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// TestDiskFullRefusesThenRecovers runs vigil on a small tmpfs and fills it:
// while the disk is full every ingest path refuses with a retryable error
// and acknowledges nothing it did not store, the server stays up and says
// why; once space returns ingest works again without a restart, and after a
// restart everything acknowledged is there.
func TestDiskFullRefusesThenRecovers(t *testing.T) {
	if runAsNamespaceRoot(t) {
		return
	}
	mnt := filepath.Join(t.TempDir(), "fs")
	mountTmpfs(t, mnt, 64<<20)
	data := filepath.Join(mnt, "data")
	ballast := filepath.Join(mnt, "ballast")
	s := startServer(t, data)
	ctx := t.Context()
	c := newIngestClient(t, s, 1, "e2e_disk")

	// Before: every kind is acknowledged.
	for range 3 {
		for _, kind := range sendKinds {
			if r := c.send(ctx, kind); r != nil {
				t.Fatalf("%s before the disk filled: %s", kind, r.what)
			}
		}
	}

	// Leave a little more than the reserve and keep writing: ingest must
	// turn from acknowledging to refusing as the data fills the disk.
	fillDisk(t, ballast, embedded.DiskReserve(mnt)+(1<<20))
	refused := map[string]int{}
	acks := 0
	for round := 0; round < 1000 && len(refused) < len(sendKinds); round++ {
		for _, kind := range sendKinds {
			r := c.send(ctx, kind)
			if r == nil {
				acks++
				continue
			}
			refused[kind]++
			if !r.ok {
				t.Errorf("%s as the disk fills: %s, want 503 with Retry-After or gRPC UNAVAILABLE", kind, r.what)
			}
		}
	}
	if len(refused) < len(sendKinds) {
		t.Fatalf("only %v refused after 1000 rounds filling the disk", refused)
	}
	t.Logf("filling: %d requests acknowledged until refusals began", acks)
	// Then something else takes the rest, to the last byte.
	fillDisk(t, ballast+"2", 0)
	for round := 0; round < 10; round++ {
		for _, kind := range sendKinds {
			r := c.send(ctx, kind)
			if r == nil {
				t.Errorf("%s acknowledged on a full disk", kind)
				continue
			}
			refused[kind]++
			if !r.ok {
				t.Errorf("%s while the disk is full: %s, want 503 with Retry-After or gRPC UNAVAILABLE", kind, r.what)
			}
		}
	}
	t.Logf("refused %v; acknowledged so far %d traces, %d log batches, %d remote_write requests",
		refused, len(c.a.traceIDs), len(c.a.logTraces), len(c.a.rwReqs))
	if code := s.getJSON(t, "/-/healthy", nil); code != http.StatusOK {
		t.Errorf("/-/healthy while the disk is full: %d", code)
	}
	out := s.logs.String()
	for _, want := range []string{
		`"msg":"disk almost full: refusing writes until space is freed"`,
		`"msg":"storage write failed"`,
		`"msg":"remote_write: storage failed, nothing stored"`,
	} {
		if lineCount(out, want) == 0 {
			t.Errorf("no log line with %s", want)
		}
	}
	// The reserve, not ENOSPC, must have stopped the span/log writes: DuckDB
	// damages committed rows when a commit fails for want of space.
	if n := lineCount(out, "embedded: commit to"); n > 0 {
		t.Errorf("%d span/log commits failed inside DuckDB instead of being refused before", n)
	}
	for _, m := range []string{
		`vigil_storage_write_failures_total{reason="disk_full",store="duckdb"}`,
		`vigil_storage_write_failures_total{reason="disk_full",store="tsdb"}`,
	} {
		if v := s.metricValue(t, m); v <= 0 {
			t.Errorf("%s = %v while the disk is full, want > 0", m, v)
		}
	}
	// Reads still work on a full disk.
	if n := checkAcked(t, s, &c.a, "e2e_disk"); n > 0 {
		t.Fatalf("%d acknowledged items unreadable while the disk is full", n)
	}

	// Space returns: ingest recovers without a restart.
	for _, f := range []string{ballast, ballast + "2"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range sendKinds {
		var last *refusal
		waitFor(t, kind+" to be acknowledged after space returned", 30*time.Second, func() bool {
			last = c.send(ctx, kind)
			if last != nil && !last.ok {
				t.Errorf("%s after space returned: %s", kind, last.what)
			}
			return last == nil
		})
	}
	for range 3 {
		for _, kind := range sendKinds {
			if r := c.send(ctx, kind); r != nil {
				t.Errorf("%s after recovery: %s", kind, r.what)
			}
		}
	}
	if n := checkAcked(t, s, &c.a, "e2e_disk"); n > 0 {
		t.Fatalf("%d acknowledged items unreadable after space returned", n)
	}

	s.stop(t)
	s = startServer(t, data)
	if n := checkAcked(t, s, &c.a, "e2e_disk"); n > 0 {
		t.Fatalf("%d acknowledged items lost across a restart", n)
	}
	t.Logf("acknowledged and kept: %d traces, %d log batches, %d remote_write requests",
		len(c.a.traceIDs), len(c.a.logTraces), len(c.a.rwReqs))
}
