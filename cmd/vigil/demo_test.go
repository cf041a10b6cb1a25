package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// TestDemoAgainstServer runs `vigil demo` against `vigil server` and follows
// a gateway log record to its trace: one trace across all four services,
// with logs from each of them linked to it.
func TestDemoAgainstServer(t *testing.T) {
	s := startServer(t, t.TempDir())
	base := testport.Run(t, 4)
	startDemo(t, s, base)

	var services map[string]bool
	var traceID string
	waitFor(t, "a trace across the four shop services", 90*time.Second, func() bool {
		for _, tr := range gatewayTraces(t, s) {
			if len(tr.services) == 4 {
				services, traceID = tr.services, tr.id
				return true
			}
		}
		return false
	})
	for _, svc := range []string{"gateway", "catalog", "orders", "payments"} {
		if !services[svc] {
			t.Errorf("trace %s lacks %s: %v", traceID, svc, services)
		}
	}
	var lr struct {
		Data []struct {
			Service    string         `json:"service"`
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if s.getJSON(t, "/api/logs?trace_id="+traceID, &lr) != http.StatusOK {
		t.Fatal("logs by trace id")
	}
	logServices := map[string]bool{}
	for _, r := range lr.Data {
		logServices[r.Service] = true
		if c, ok := r.Attributes["card_number"]; ok && c != "[REDACTED]" {
			t.Errorf("card number stored unredacted: %v", c)
		}
	}
	if len(logServices) != 4 {
		t.Errorf("logs of trace %s come from %v, want all four services", traceID, logServices)
	}
	// The shop's services serve scrapeable metrics.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", base))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("gateway /metrics: HTTP %d", resp.StatusCode)
	}
}

// startDemo runs `vigil demo` against s with its gateway on port base,
// stopping it when the test ends and showing its output if the test failed.
// The returned stop ends it earlier, as Ctrl-C does (see startDemoAt).
func startDemo(t *testing.T, s *server, base int, extra ...string) (stop func()) {
	t.Helper()
	return startDemoAt(t, s.grpcA, nil, base, append([]string{"--vigil-url", s.httpURL}, extra...)...)
}

// startDemoAt runs `vigil demo` sending to endpoint, with env added to its
// environment. Without a --vigil-url in extra it reads no configuration
// centre; its services' configuration cache is in a temporary directory.
// stop sends SIGTERM, so that the demo flushes its telemetry (and its
// profiler the last interval) as on Ctrl-C, and waits for it to exit
// (killing it after 10 s); the test's cleanup kills it unless stopped.
func startDemoAt(t *testing.T, endpoint string, env []string, base int, extra ...string) (stop func()) {
	t.Helper()
	args := append([]string{"demo", "--otlp-endpoint", endpoint, "--port-base", strconv.Itoa(base), "--rps", "20", "--vigil-url", ""}, extra...)
	demo := exec.Command(vigilBin, args...)
	demo.Env = append(os.Environ(), append([]string{"VIGIL_URL=", "VIGIL_CONFIG_CACHE_DIR=" + t.TempDir()}, env...)...)
	out := &syncBuffer{}
	demo.Stdout, demo.Stderr = out, out
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = demo.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = demo.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("demo did not stop within 10s of SIGTERM; killed")
				_ = demo.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(func() {
		once.Do(func() {
			_ = demo.Process.Kill()
			<-exited
		})
		if t.Failed() {
			t.Logf("demo output (tail):\n%s", tail(out.String(), 3000))
		}
	})
	return stop
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestDemoPortInUse: a demo whose ports are taken (as by the demo `make
// run` starts) fails at once, naming the port and --port-base, and never
// claims to be running.
func TestDemoPortInUse(t *testing.T) {
	base := testport.Run(t, 4)
	taken, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+1))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// Nothing needs to receive: the demo must stop before sending anything.
	out, err := exec.Command(vigilBin, "demo", "--otlp-endpoint", "127.0.0.1:1", "--port-base", strconv.Itoa(base)).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want exit code 1, got %v\n%s", err, out)
	}
	for _, want := range []string{"catalog on 127.0.0.1:" + strconv.Itoa(base+1), "address already in use", "--port-base"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "shop running") {
		t.Errorf("claimed to run:\n%s", out)
	}
}

// paymentsSLOConfig is the example's payments SLO, evaluated every
// second rather than every 15 s, so that the guard judges within seconds
// of the span metrics' first flush.
const paymentsSLOConfig = `global:
  evaluation_interval: 1s
slos:
  - version: prometheus/v1
    service: payments
    slos:
      - name: charge-errors
        objective: 99.9
        sli: {spans: {operation: "shop.Payments/Charge"}}
        alerting:
          name: PaymentsChargeBudgetBurn
`

// TestDemoBadConfigGuard runs `vigil demo --fault bad-config` against a
// server holding the example's payments SLO: the demo seeds the formal
// payments settings (version 1) and grays a 1ms processor timeout onto the
// payments instance; its charges fail, the SLO's page condition holds,
// and the guard aborts the gray by itself, so payments is back on version
// 1, and ConfigGrayAborted is sent. The example's 15s evaluation interval is 1s here so that the guard
// judges within seconds of the span metrics' first flush (every 15s); the
// SLO and its page windows (5m and 1h) are the example's.
func TestDemoBadConfigGuard(t *testing.T) {
	cfg := writeConfig(t, paymentsSLOConfig)
	s := startServer(t, t.TempDir(), "--config", cfg)
	base := testport.Run(t, 4)
	startDemo(t, s, base, "--fault", "bad-config")
	applied := func() string { return paymentsApplied(base) }
	waitFor(t, "payments on the gray", 30*time.Second, func() bool {
		return applied() == `vigil_config_applied_info{cohort="gray",item="shop/payments/settings",version="2"} 1`
	})
	start := time.Now()

	var changes struct {
		Data []struct {
			Kind, Action, Author, Message, Item string
			Version                             int
		}
	}
	waitFor(t, "the gray aborted by vigil-guard", time.Minute, func() bool {
		if s.getJSON(t, "/api/v1/changes", &changes) != http.StatusOK {
			return false
		}
		// The configuration's changes (the shop's registry joins are
		// listed too).
		changes.Data = slices.DeleteFunc(changes.Data, func(c struct {
			Kind, Action, Author, Message, Item string
			Version                             int
		}) bool {
			return c.Kind != "config"
		})
		if len(changes.Data) == 0 {
			return false
		}
		last := changes.Data[len(changes.Data)-1]
		return last.Action == "abort" && last.Author == "vigil-guard"
	})
	t.Logf("gray aborted %v after payments applied it", time.Since(start).Round(time.Second))
	var actions []string
	for _, c := range changes.Data {
		actions = append(actions, fmt.Sprintf("%s %s v%d by %s", c.Action, c.Item, c.Version, c.Author))
	}
	want := []string{
		"put shop/payments/settings v1 by vigil demo",
		"gray shop/payments/settings v2 by vigil demo",
		"abort shop/payments/settings v1 by vigil-guard",
	}
	if !slices.Equal(actions, want) {
		t.Errorf("changes %q, want %q", actions, want)
	}
	if msg := changes.Data[len(changes.Data)-1].Message; !strings.Contains(msg, "page (fast burn) condition of SLO payments/charge-errors holds") {
		t.Errorf("abort reason %q", msg)
	}
	// The cohort's charges failed: error spans of payments' Charge.
	if got := s.promQuery(t, `sum(traces_span_metrics_calls_total{service_name="payments",span_name="shop.Payments/Charge",status_code="STATUS_CODE_ERROR"})`); len(got) != 1 {
		t.Errorf("no failed charges recorded: %v", got)
	}
	waitFor(t, "payments back on the formal version", 30*time.Second, func() bool {
		return applied() == `vigil_config_applied_info{cohort="formal",item="shop/payments/settings",version="1"} 1`
	})
	// The notification.
	var alerts []struct{ Labels map[string]string }
	waitFor(t, "ConfigGrayAborted in the Alertmanager", 30*time.Second, func() bool {
		if s.getJSON(t, "/api/v2/alerts", &alerts) != http.StatusOK {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "ConfigGrayAborted" && a.Labels["key"] == "settings" && a.Labels["version"] == "2" {
				return true
			}
		}
		return false
	})
}

// paymentsApplied is the vigil_config_applied_info line of the payments
// service of the demo on base, or "" when it cannot be read.
func paymentsApplied(base int) string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", base+3))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "vigil_config_applied_info{") {
			return line
		}
	}
	return ""
}

// TestDemoGoodGrayPromoted: with two demo shops on one server, a good gray
// of the payments settings on one payments instance, guarded by the
// payments SLO, is applied by that instance only, survives the guard, and
// once promoted every instance converges on the new formal version.
func TestDemoGoodGrayPromoted(t *testing.T) {
	cfg := writeConfig(t, paymentsSLOConfig)
	s := startServer(t, t.TempDir(), "--config", cfg)
	bases := []int{testport.Run(t, 4), testport.Run(t, 4)}
	for _, base := range bases {
		startDemo(t, s, base)
	}
	applied := paymentsApplied
	on := func(cohort string, version int) string {
		return fmt.Sprintf(`vigil_config_applied_info{cohort=%q,item="shop/payments/settings",version="%d"} 1`, cohort, version)
	}
	for _, base := range bases {
		waitFor(t, "payments on the formal version", 30*time.Second, func() bool { return applied(base) == on("formal", 1) })
	}
	post := func(path, contentType, body string) {
		t.Helper()
		resp, err := http.Post(s.httpURL+"/api/v1/config/shop/payments/settings"+path, contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}
	gray, err := json.Marshal(map[string]any{
		"content":      "timeout: 2s\nfraud_check: true\n",
		"content_type": "yaml",
		"match":        map[string]any{"instances": []string{fmt.Sprintf("payments@127.0.0.1:%d", bases[0]+3)}},
		"guard":        map[string]string{"slo": "payments/charge-errors"},
	})
	if err != nil {
		t.Fatal(err)
	}
	post("/gray", "application/json", string(gray))
	waitFor(t, "the first payments on the gray", 30*time.Second, func() bool { return applied(bases[0]) == on("gray", 2) })
	// The guard judges the gray a few times without a breach, and the
	// other instance stays on the formal version meanwhile.
	passes := `vigil_config_guard_evaluations_total{result="pass"}`
	from := s.metricValue(t, passes)
	waitFor(t, "three guard rounds", 30*time.Second, func() bool { return s.metricValue(t, passes) >= from+3 })
	if n := s.metricValue(t, `vigil_config_guard_evaluations_total{result="breach"}`); n != 0 {
		t.Fatalf("the guard found %v breaches of a good gray", n)
	}
	if got := applied(bases[1]); got != on("formal", 1) {
		t.Fatalf("the instance outside the gray: %s", got)
	}
	if got := applied(bases[0]); got != on("gray", 2) {
		t.Fatalf("the gray instance after three guard rounds: %s", got)
	}
	post("/gray/promote", "", "")
	for _, base := range bases {
		waitFor(t, "every payments on the promoted version", 30*time.Second, func() bool { return applied(base) == on("formal", 3) })
	}
	var changes struct {
		Data []struct{ Kind, Action, Author string }
	}
	if s.getJSON(t, "/api/v1/changes", &changes) != http.StatusOK {
		t.Fatal("GET /api/v1/changes")
	}
	var actions []string
	for _, c := range changes.Data {
		if c.Kind == "config" {
			actions = append(actions, c.Action)
		}
	}
	if want := []string{"put", "gray", "promote"}; !slices.Equal(actions, want) {
		t.Errorf("config changes %q, want %q", actions, want)
	}
}

// TestDemoProfilesItself: the demo's four services share one profiler,
// their requests' samples are filed under each's name, and under
// slow-payments payments' CPU profile shows the slow path.
func TestDemoProfilesItself(t *testing.T) {
	s := startServer(t, t.TempDir())
	base := testport.Run(t, 4)
	start := time.Now()
	startDemo(t, s, base, "--fault", "slow-payments")

	var svcs struct {
		Data []struct {
			Service string `json:"service"`
		} `json:"data"`
	}
	var top struct {
		Data struct {
			Functions []struct {
				Name string `json:"name"`
			} `json:"functions"`
		} `json:"data"`
	}
	// The demo's 20 requests a second cost catalog so little CPU that a
	// 100 Hz profiler may take none of its samples in a minute on a busy
	// machine; a client listing the products without pause gives gateway
	// and catalog samples of their own.
	stopListing := requestWithoutPause(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/products", base), "")
	var listed []string
	waitFor(t, "profiles of the four services", 60*time.Second, func() bool {
		if s.getJSON(t, "/api/v1/profiles/services", &svcs) != http.StatusOK {
			return false
		}
		listed = listed[:0]
		for _, d := range svcs.Data {
			listed = append(listed, d.Service)
		}
		for _, name := range []string{"gateway", "catalog", "orders", "payments"} {
			if !slices.Contains(listed, name) {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("services with profiles: %q", listed) })
	stopListing()
	waitFor(t, "scoreFraud at the top of payments' CPU profile", 20*time.Second, func() bool {
		if s.getJSON(t, "/api/v1/profiles/top?service=payments&type=cpu", &top) != http.StatusOK || len(top.Data.Functions) == 0 {
			return false
		}
		return strings.HasSuffix(top.Data.Functions[0].Name, ".scoreFraud")
	})
	// The service_name label did not displace otel-profiling-go's
	// span_id: some payments server span has a profile of its own.
	q := url.Values{"service": {"payments"}, "tags": {`{"span.kind":"server"}`}, "limit": {"20"}}
	var traces struct {
		Data []struct {
			Spans []struct {
				ProcessID string
				Tags      []struct {
					Key   string
					Value any
				}
			}
			Processes map[string]struct{ ServiceName string }
		}
	}
	linked, probed := "", 0
	waitFor(t, "a payments span with its own CPU profile (span_id kept beside service_name)", 20*time.Second, func() bool {
		if s.getJSON(t, "/api/traces?"+q.Encode(), &traces) != http.StatusOK {
			return false
		}
		for _, tr := range traces.Data {
			for _, sp := range tr.Spans {
				if tr.Processes[sp.ProcessID].ServiceName != "payments" {
					continue
				}
				for _, tag := range sp.Tags {
					id, _ := tag.Value.(string)
					if tag.Key != "pyroscope.profile.id" || linked != "" {
						continue
					}
					probed++
					top.Data.Functions = nil
					if s.getJSON(t, "/api/v1/profiles/top?service=payments&type=cpu&span_id="+id, &top) == http.StatusOK && len(top.Data.Functions) > 0 {
						linked = id
					}
				}
			}
		}
		return linked != ""
	})
	t.Logf("profiles of %v, payments' top function scoreFraud, %v after the demo started; span %s's own profile found among %d probed",
		listed, time.Since(start).Round(time.Second), linked, probed)
}

// TestDemoSlowPaymentsDiff: the demo runs healthy, then again under
// slow-payments against the same server; payments' CPU diff of the slow
// minutes against the healthy ones names scoreFraud as the function that
// grew most, from nothing (healthy charges never call it).
func TestDemoSlowPaymentsDiff(t *testing.T) {
	s := startServer(t, t.TempDir())
	began := time.Now()

	healthyStart := time.Now()
	base := testport.Run(t, 4)
	stopHealthy := startDemo(t, s, base)
	// At the demo's 5 orders a second a healthy charge costs payments so
	// little CPU that a 100 Hz profiler takes a sample or two in half a
	// minute; a client placing orders without pause gives the healthy
	// minutes a baseline worth comparing against (and the slow ones the
	// same load).
	stopOrders := placeOrders(t, base)
	var healthy profileTop
	waitFor(t, "a CPU profile of healthy payments", 45*time.Second, func() bool {
		return s.getJSON(t, "/api/v1/profiles/top?service=payments&type=cpu&limit=5&start="+unixMilli(healthyStart), &healthy) == http.StatusOK &&
			healthy.Data.Profiles > 0
	})
	healthyOrders := stopOrders()
	stopHealthy()
	healthyEnd := time.Now()

	// CPU profiles cover the real time from the profiler's start to each
	// upload, so the second demo's begin after healthyEnd: the ranges do
	// not overlap.
	slowStart := time.Now()
	base = testport.Run(t, 4)
	startDemo(t, s, base, "--fault", "slow-payments")
	stopOrders = placeOrders(t, base)
	q := url.Values{
		"service": {"payments"}, "type": {"cpu"}, "limit": {"10"},
		"start": {unixMilli(slowStart)}, "baseline_start": {unixMilli(healthyStart)}, "baseline_end": {unixMilli(healthyEnd)},
	}
	var diff profileDiff
	waitFor(t, "scoreFraud as the function that grew most in payments' CPU diff", 45*time.Second, func() bool {
		diff = profileDiff{}
		if s.getJSON(t, "/api/v1/profiles/diff?"+q.Encode(), &diff) != http.StatusOK || diff.Data.Comparison.Profiles == 0 {
			return false
		}
		g := diff.grewMost()
		return g != nil && strings.HasSuffix(g.Name, ".scoreFraud")
	}, func() string { return diff.String() })
	slowOrders := stopOrders()

	d := diff.Data
	if d.Baseline.Profiles == 0 || d.Baseline.Total == 0 {
		t.Errorf("baseline %+v: want the healthy minutes' samples", d.Baseline)
	}
	g := diff.grewMost()
	if g.BaselineSelf != 0 || g.ComparisonSelf == 0 || g.Change <= 0 {
		t.Errorf("scoreFraud: %+v, want none in the baseline and some in the comparison", *g)
	}
	// The diff's flame graph holds the slow path too: a scoreFraud frame
	// only the comparison has.
	frame := d.FlameGraph.find(func(n *diffFrame) bool { return strings.HasSuffix(n.Name, ".scoreFraud") })
	if frame == nil {
		t.Fatalf("no scoreFraud frame in the diff flame graph; %s", diff.String())
	}
	if frame.Baseline != 0 || frame.Comparison == 0 || frame.ComparisonShare <= frame.BaselineShare {
		t.Errorf("scoreFraud frame %+v, want it only in the comparison", *frame)
	}
	t.Logf("healthy %v (%d orders placed, payments %d profiles, %v CPU), slow %v (%d orders, %d profiles, %v CPU); scoreFraud %.1f%% -> %.1f%% of payments' CPU; %v in all",
		healthyEnd.Sub(healthyStart).Round(time.Second), healthyOrders, d.Baseline.Profiles, time.Duration(d.Baseline.Total),
		time.Since(slowStart).Round(time.Second), slowOrders, d.Comparison.Profiles, time.Duration(d.Comparison.Total),
		100*g.BaselineShare, 100*g.ComparisonShare, time.Since(began).Round(time.Second))
}

func unixMilli(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// placeOrders posts orders to the demo's gateway on port base, one after
// the other, until the returned stop, which says how many were answered.
func placeOrders(t *testing.T, base int) (stop func() int) {
	t.Helper()
	return requestWithoutPause(t, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/orders", base),
		`{"product_id":1,"quantity":1,"card_number":"4111111111111111"}`)
}

// requestWithoutPause sends method url (with body, as JSON, when set)
// again and again until the returned stop (or the test's end), which
// tells how many were answered.
func requestWithoutPause(t *testing.T, method, url, body string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	answered := make(chan int, 1)
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		n := 0
		defer func() { answered <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			req, err := http.NewRequest(method, url, strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				// The demo is still starting.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			n++
		}
	}()
	var once sync.Once
	n := 0
	stop = func() int {
		once.Do(func() {
			close(done)
			n = <-answered
		})
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// profileTop is the answer of /api/v1/profiles/top.
type profileTop struct {
	Data struct {
		Profiles  int   `json:"profiles"`
		Total     int64 `json:"total"`
		Functions []struct {
			Name string `json:"name"`
			Self int64  `json:"self"`
		} `json:"functions"`
	} `json:"data"`
}

// profileDiff is the answer of /api/v1/profiles/diff (docs/profiling.md).
type profileDiff struct {
	Data struct {
		Baseline, Comparison struct {
			Profiles int   `json:"profiles"`
			Total    int64 `json:"total"`
		}
		FlameGraph *diffFrame       `json:"flamegraph"`
		Changes    []functionChange `json:"changes"`
	} `json:"data"`
}

type diffFrame struct {
	Name            string       `json:"name"`
	Baseline        int64        `json:"baseline"`
	Comparison      int64        `json:"comparison"`
	BaselineShare   float64      `json:"baseline_share"`
	ComparisonShare float64      `json:"comparison_share"`
	Children        []*diffFrame `json:"children"`
}

type functionChange struct {
	Name            string  `json:"name"`
	BaselineSelf    int64   `json:"baseline_self"`
	ComparisonSelf  int64   `json:"comparison_self"`
	BaselineShare   float64 `json:"baseline_share"`
	ComparisonShare float64 `json:"comparison_share"`
	Change          float64 `json:"change"`
}

// grewMost is the change with the largest growth, nil when nothing grew.
// The API ranks changes by size either way, so a shrink (the healthy
// minutes' runtime frames losing their share) may come before it.
func (d *profileDiff) grewMost() *functionChange {
	var best *functionChange
	for i, c := range d.Data.Changes {
		if c.Change > 0 && (best == nil || c.Change > best.Change) {
			best = &d.Data.Changes[i]
		}
	}
	return best
}

func (d *profileDiff) String() string {
	s := fmt.Sprintf("baseline %+v, comparison %+v, changes:", d.Data.Baseline, d.Data.Comparison)
	for _, c := range d.Data.Changes {
		s += fmt.Sprintf(" %s %+.3f", c.Name, c.Change)
	}
	return s
}

// find is the first frame, depth first, that match holds for.
func (n *diffFrame) find(match func(*diffFrame) bool) *diffFrame {
	if n == nil {
		return nil
	}
	if match(n) {
		return n
	}
	for _, c := range n.Children {
		if f := c.find(match); f != nil {
			return f
		}
	}
	return nil
}
