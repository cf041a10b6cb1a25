package promapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/vigil-observability/vigil/internal/testport"
)

// prometheusBinary is the Debian package's server binary.
const prometheusBinary = "/usr/bin/prometheus"

// startupDeadline bounds waiting for the real Prometheus to become ready; a
// failure bound, not a timing assertion.
const startupDeadline = 2 * time.Minute

// lockedBuffer collects the child's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPrometheus runs the real Prometheus with an empty scrape
// configuration (so it ingests nothing of its own) and the remote-write
// receiver on, and returns its base URL.
func startPrometheus(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(prometheusBinary); err != nil {
		t.Fatalf("%s not found (%v): the byte-compatibility test needs the real Prometheus; run: apt-get install prometheus", prometheusBinary, err)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte("global: {}\nscrape_configs: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testport.Addr(t)
	out := &lockedBuffer{}
	cmd := exec.Command(prometheusBinary,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", prometheusBinary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // Only the process this test started.
		<-exited
	})

	base := "http://" + addr
	deadline := time.Now().Add(startupDeadline)
	for {
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited before becoming ready: %v\n%s", err, out)
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready: %v\n%s", addr, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remoteWrite sends the samples to Prometheus's remote-write receiver as a
// remote-write 1.0 request: snappy-compressed prompb.WriteRequest.
func remoteWrite(t *testing.T, base string, samples []sample) {
	t.Helper()
	var req prompb.WriteRequest
	index := map[string]int{}
	for _, s := range samples {
		key := s.series.String()
		i, ok := index[key]
		if !ok {
			i = len(req.Timeseries)
			index[key] = i
			ts := prompb.TimeSeries{}
			s.series.Range(func(l labels.Label) {
				ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
			})
			req.Timeseries = append(req.Timeseries, ts)
		}
		req.Timeseries[i].Samples = append(req.Timeseries[i].Samples, prompb.Sample{Timestamp: s.t, Value: s.v})
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	httpReq, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		t.Fatal(err)
	}
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(httpReq)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: HTTP %d %s", resp.StatusCode, body)
	}
}

// TestMatchesPrometheus loads the same samples into vigil's API (over a
// TSDB) and into a real Prometheus (over remote write), then requires the
// same status and the same response bytes for every compat request.
//
// Excluded, because they legitimately differ: status/buildinfo (version and
// build of each binary), status/flags, status/config and
// status/runtimeinfo (process-specific), targets (vigil's Prometheus
// library is newer than Debian's server and adds droppedTargetCounts; the
// targets themselves are covered by the golden test).
func TestMatchesPrometheus(t *testing.T) {
	base := startPrometheus(t)
	samples := loadSamples(t)
	remoteWrite(t, base, samples)

	h := newHandler(t, Options{Queryable: openLoadedTSDB(t, nil)})

	// The remote write is acknowledged after the append is committed, so
	// the data is queryable now; this guard makes a broken ingest fail
	// with a clear message instead of as a diff on every request.
	if code, body := get(t, nil, base, q("count(vigil_test_requests_total)", tMid)); code != http.StatusOK || !strings.Contains(string(body), `"2"`) {
		t.Fatalf("prometheus does not hold the remote-written samples: %s", describe(code, body))
	}

	compared := 0
	for _, r := range queryRequests {
		if !r.compat {
			continue
		}
		compared++
		t.Run(r.name, func(t *testing.T) {
			promCode, promBody := get(t, nil, base, r.path)
			code, body := get(t, h, "", r.path)
			if code != promCode {
				t.Fatalf("GET %s: status differs from Prometheus\nprometheus: %s\n     vigil: %s",
					r.path, describe(promCode, promBody), describe(code, body))
			}
			if err := compareCompat(r.diff, body, promBody); err != nil {
				t.Errorf("GET %s differs from Prometheus: %v\nprometheus: %s\n     vigil: %s",
					r.path, err, promBody, body)
			}
		})
	}
	if compared == 0 {
		t.Fatal("no compat requests")
	}
	t.Logf("compared %d endpoints with %s", compared, prometheusBinary)
}

// compareCompat requires identical bodies, except for the one documented
// difference a request is marked with, which it tolerates and nothing else.
func compareCompat(diff versionDiff, vigil, prom []byte) error {
	if bytes.Equal(vigil, prom) {
		return nil
	}
	switch diff {
	case sameBytes:
		return errors.New("bodies differ")
	case errorTextCase:
		if bytes.EqualFold(vigil, prom) {
			return nil
		}
		return errors.New("bodies differ beyond letter case")
	case floatLastBits:
		var a, b any
		if err := json.Unmarshal(vigil, &a); err != nil {
			return err
		}
		if err := json.Unmarshal(prom, &b); err != nil {
			return err
		}
		return equalWithinULPs(a, b, "$")
	case unsortedSingleMatch:
		type seriesResponse struct {
			Status string              `json:"status"`
			Data   []map[string]string `json:"data"`
		}
		var a, b seriesResponse
		if err := json.Unmarshal(vigil, &a); err != nil {
			return err
		}
		if err := json.Unmarshal(prom, &b); err != nil {
			return err
		}
		for _, r := range []*seriesResponse{&a, &b} {
			slices.SortFunc(r.Data, func(x, y map[string]string) int {
				return labels.Compare(labels.FromMap(x), labels.FromMap(y))
			})
		}
		if !reflect.DeepEqual(a, b) {
			return errors.New("different series")
		}
		return nil
	}
	return fmt.Errorf("unknown difference kind %d", diff)
}

// equalWithinULPs compares decoded JSON exactly, except that two strings
// that are both numbers (PromQL sample values) may differ by a relative
// 1e-15, i.e. a few units in the last place.
func equalWithinULPs(a, b any, path string) error {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return fmt.Errorf("%s: different objects", path)
		}
		for k, x := range av {
			if err := equalWithinULPs(x, bv[k], path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return fmt.Errorf("%s: different arrays", path)
		}
		for i := range av {
			if err := equalWithinULPs(av[i], bv[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case string:
		bv, ok := b.(string)
		if !ok {
			return fmt.Errorf("%s: %q vs %v", path, av, b)
		}
		if av == bv {
			return nil
		}
		x, errX := strconv.ParseFloat(av, 64)
		y, errY := strconv.ParseFloat(bv, 64)
		if errX != nil || errY != nil || math.Abs(x-y) > 1e-15*math.Max(math.Abs(x), math.Abs(y)) {
			return fmt.Errorf("%s: %q vs %q", path, av, bv)
		}
		return nil
	default:
		if !reflect.DeepEqual(a, b) {
			return fmt.Errorf("%s: %v vs %v", path, a, b)
		}
		return nil
	}
}

// TestCompareCompat bounds the tolerances: each accepts only its own
// difference.
func TestCompareCompat(t *testing.T) {
	tests := []struct {
		name        string
		diff        versionDiff
		vigil, prom string
		wantOK      bool
	}{
		{"identical", sameBytes, `{"a":"1"}`, `{"a":"1"}`, true},
		{"any byte differs", sameBytes, `{"a":"1"}`, `{"a":"2"}`, false},
		{"case only", errorTextCase, `{"error":"invalid x"}`, `{"error":"Invalid x"}`, true},
		{"case and words", errorTextCase, `{"error":"invalid x"}`, `{"error":"Invalid y"}`, false},
		{"last bits", floatLastBits, `{"v":[1,"0.033333333333333326"]}`, `{"v":[1,"0.03333333333333333"]}`, true},
		{"real value change", floatLastBits, `{"v":[1,"0.0333333"]}`, `{"v":[1,"0.03333333333333333"]}`, false},
		{"timestamp change", floatLastBits, `{"v":[2,"1"]}`, `{"v":[1,"1"]}`, false},
		{"label change", floatLastBits, `{"m":{"a":"x"}}`, `{"m":{"a":"y"}}`, false},
		{"series reordered", unsortedSingleMatch, `{"status":"success","data":[{"a":"2"},{"a":"1"}]}`, `{"status":"success","data":[{"a":"1"},{"a":"2"}]}`, true},
		{"series missing", unsortedSingleMatch, `{"status":"success","data":[{"a":"2"}]}`, `{"status":"success","data":[{"a":"1"},{"a":"2"}]}`, false},
	}
	for _, tt := range tests {
		err := compareCompat(tt.diff, []byte(tt.vigil), []byte(tt.prom))
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: compareCompat = %v, want ok=%v", tt.name, err, tt.wantOK)
		}
	}
}
