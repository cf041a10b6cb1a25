package shop

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
	"github.com/vigil-observability/vigil/internal/registry"
	"github.com/vigil-observability/vigil/internal/registry/consulapi"
	sdkconfig "github.com/vigil-observability/vigil/sdk/configcentre"
)

// startConfigCentre serves vigil's configuration centre API (the real
// handler over a single-node store) for the shop to read.
func startConfigCentre(t *testing.T) string {
	url, _ := startVigilAPI(t)
	return url
}

// startVigilAPI serves the configuration centre API and the registry's
// Consul API (the real handlers), as vigil's web listener does.
func startVigilAPI(t *testing.T) (string, *registry.Registry) {
	t.Helper()
	l, err := configcentre.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	instances := registry.New(registry.Options{})
	mux := http.NewServeMux()
	mux.Handle("/api/v1/config/", configapi.NewHandler(configapi.Options{Proposer: l, Reader: l.Machine()}))
	consul := consulapi.NewHandler(consulapi.Options{Registry: instances})
	mux.Handle("/v1/", consul)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); l.Close() })
	// The services keep their last values here, not in the user's cache.
	t.Setenv("VIGIL_CONFIG_CACHE_DIR", t.TempDir())
	return srv.URL, instances
}

// TestShopRegisters: with vigil's URL, each of the shop's four services
// registers with the registry under its instance id, at its address,
// with its version and passing health, and deregisters when the shop
// stops.
func TestShopRegisters(t *testing.T) {
	url, instances := startVigilAPI(t)
	r := startShopWith(t, Options{ConfigURL: url})
	want := map[string]int{}
	for i, name := range []string{nameGateway, nameCatalog, nameOrders, namePayments} {
		want[configInstance(name, "127.0.0.1:"+strconv.Itoa(r.base+i))] = r.base + i
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		es, _ := instances.Entries("")
		ok := len(es) == len(want)
		for _, e := range es {
			ok = ok && want[e.ID] == e.Port && e.Address == "127.0.0.1" && e.Version() == "demo" && e.Health == registry.Passing
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registered %+v, want %v", es, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	if es, _ := instances.Entries(""); len(es) != 0 {
		t.Fatalf("still registered after the shop stopped: %+v", es)
	}
}

func configCall(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitMetric waits until service i's /metrics has a line containing want.
func (r *shopRun) waitMetric(i int, want string) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.metrics(i), want) {
		if time.Now().After(deadline) {
			r.t.Fatalf("service %d /metrics never had %s:\n%s", i, want, grep(r.metrics(i), "vigil_config"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitApplied waits until payments has logged n times that it applied
// version of the settings in cohort (its callback runs after the metric
// is set).
func (r *shopRun) waitApplied(n int, version float64, cohort string) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		seen := 0
		for _, m := range r.out.lines(r.t) {
			if m["service"] == namePayments && m["msg"] == "payments: settings applied" && m["version"] == version && m["cohort"] == cohort {
				seen++
			}
		}
		if seen >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("payments never applied version %v (%s)", version, cohort)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShopReadsSettings: Run seeds the payments settings when the item
// does not exist, payments applies them (vigil_config_applied_info), and
// an item that exists is left as it is.
func TestShopReadsSettings(t *testing.T) {
	url := startConfigCentre(t)
	r := startShopWith(t, Options{ConfigURL: url})
	code, body := configCall(t, http.MethodGet, url+"/api/v1/config/"+SettingsItem)
	if code != http.StatusOK || !strings.Contains(body, `"version":1`) || !strings.Contains(body, "timeout: 800ms") {
		t.Fatalf("seeded item: %d %s", code, body)
	}
	r.waitMetric(3, `vigil_config_applied_info{cohort="formal",item="shop/payments/settings",version="1"} 1`)
	r.waitApplied(1, 1, "formal")
	if code := r.order(1); code != http.StatusCreated {
		t.Errorf("POST /orders on the formal settings: %d", code)
	}
	r.stop()

	// A second run finds the item and does not put it again.
	startShopWith(t, Options{ConfigURL: url}).waitMetric(3, `item="shop/payments/settings",version="1"`)
	_, hist := configCall(t, http.MethodGet, url+"/api/v1/config/"+SettingsItem+"/history")
	if n := strings.Count(hist, `"action":`); n != 1 {
		t.Errorf("history after two runs has %d versions, want 1: %s", n, hist)
	}
}

// TestShopWithoutConfigCentre: with vigil's API unreachable, the shop
// starts and charges on its defaults.
func TestShopWithoutConfigCentre(t *testing.T) {
	t.Setenv("VIGIL_CONFIG_CACHE_DIR", t.TempDir())
	r := startShopWith(t, Options{ConfigURL: "http://127.0.0.1:1"})
	if code := r.order(1); code != http.StatusCreated {
		t.Errorf("POST /orders on the default settings: %d", code)
	}
}

// TestBadConfigFault: the bad-config fault grays a 1ms processor timeout
// onto payments, whose charges then fail; once the gray is aborted (here
// by hand: the SLO guard's abort needs a server, TestDemoBadConfigGuard in
// cmd/vigil) payments is back on the formal settings and charges succeed.
func TestBadConfigFault(t *testing.T) {
	url := startConfigCentre(t)
	r := startShopWith(t, Options{ConfigURL: url, Faults: []string{faultBadConfig}})
	r.waitMetric(3, `vigil_config_applied_info{cohort="gray",item="shop/payments/settings",version="2"} 1`)
	r.waitApplied(1, 2, "gray")
	_, body := configCall(t, http.MethodGet, url+"/api/v1/config/"+SettingsItem+"/history")
	if !strings.Contains(body, `"guard":{"slo":"`+BadConfigGuard+`"}`) || !strings.Contains(body, `"instances":["payments@127.0.0.1:`+strconv.Itoa(r.base+3)+`"]`) {
		t.Errorf("the gray's guard or match: %s", body)
	}
	if code := r.order(1); code != http.StatusBadGateway {
		t.Errorf("POST /orders in the gray: %d, want 502", code)
	}
	if code, body := configCall(t, http.MethodPost, url+"/api/v1/config/"+SettingsItem+"/gray/abort"); code != http.StatusOK {
		t.Fatalf("abort: %d %s", code, body)
	}
	r.waitMetric(3, `vigil_config_applied_info{cohort="formal",item="shop/payments/settings",version="1"} 1`)
	r.waitApplied(2, 1, "formal") // at the start, and after the abort
	if code := r.order(1); code != http.StatusCreated {
		t.Errorf("POST /orders after the abort: %d", code)
	}
}

// TestBadGrayLeftOver: a gray an earlier demo run left active is ended
// before the fault starts its own; a gray of someone else is not touched.
func TestBadGrayLeftOver(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name, author string
		wantErr      bool
	}{
		{"none", "", false},
		{"demo's own", demoAuthor, false},
		{"someone else's", "dana", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newConfigAPI(startConfigCentre(t))
			if _, err := api.seed(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.author != "" {
				req, _ := http.NewRequest(http.MethodPost, api.url+"/api/v1/config/"+SettingsItem+"/gray",
					strings.NewReader(`{"content":"timeout: 1s\n","content_type":"yaml","match":{"percent":50}}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Vigil-Author", tc.author)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("the earlier gray: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			v, err := api.startBadGray(ctx, "payments@127.0.0.1:1")
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.author) {
					t.Fatalf("started over %s's gray: v%d, %v", tc.author, v, err)
				}
				if author, active, _ := api.activeGrayAuthor(ctx); !active || author != tc.author {
					t.Errorf("the other gray: active %v, by %q", active, author)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			author, active, err := api.activeGrayAuthor(ctx)
			if err != nil || !active || author != demoAuthor {
				t.Errorf("after the fault: gray by %q active %v (%v)", author, active, err)
			}
			_, body := configCall(t, http.MethodGet, api.url+"/api/v1/config/"+SettingsItem+"/history")
			if strings.Count(body, `"active_gray":true`) != 1 {
				t.Errorf("history has not exactly one active gray: %s", body)
			}
		})
	}
}

func TestDecodeSettings(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    paymentSettings
		err     bool
	}{
		{FormalSettings, paymentSettings{Timeout: 800 * time.Millisecond, FraudCheck: true}, false},
		{BadSettings, paymentSettings{Timeout: time.Millisecond, FraudCheck: true}, false},
		{"fraud_check: false\n", paymentSettings{Timeout: 800 * time.Millisecond}, false},
		{"timeout: soon\n", paymentSettings{}, true},
		{"timeout: -1s\n", paymentSettings{}, true},
	} {
		got, err := decodeSettings(sdkconfig.Snapshot{Content: tc.content, ContentType: "yaml", Version: 1})
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("decode %q = %+v, %v; want %+v (error %v)", tc.content, got, err, tc.want, tc.err)
		}
	}
}
