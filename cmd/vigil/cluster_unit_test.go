package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promcommon "github.com/prometheus/common/config"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/clusterapi"
	"github.com/vigil-observability/vigil/internal/clusterconfig"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/lifecycle"
	"github.com/vigil-observability/vigil/internal/testcert"
)

// followLeader runs the switched component exactly while the node leads:
// from the start (the stand-in leads in term 1), not after Depose, and in
// a new run after Elect.
func TestFollowLeaderSwitchesWithLeadership(t *testing.T) {
	node := consensustest.NewMemory(nil)
	var running, runs atomic.Int32
	sw := lifecycle.NewSwitch(lifecycle.Func(func(ctx context.Context) error {
		runs.Add(1)
		running.Store(1)
		<-ctx.Done()
		running.Store(0)
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	swDone, followDone := make(chan error, 1), make(chan error, 1)
	go func() { swDone <- sw.Run(ctx) }()
	go func() { followDone <- followLeader(slog.New(slog.DiscardHandler), node, sw).Run(ctx) }()

	waitFor(t, "the component running while leading", 5*time.Second, func() bool { return running.Load() == 1 })
	node.Depose()
	waitFor(t, "the component stopped once deposed", 5*time.Second, func() bool { return running.Load() == 0 })
	node.Elect()
	waitFor(t, "a second run once elected again", 5*time.Second, func() bool { return running.Load() == 1 && runs.Load() == 2 })

	cancel()
	for _, done := range []chan error{swDone, followDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("not stopped within 5s of the cancel")
		}
	}
	if running.Load() != 0 {
		t.Error("the component still runs after the stop")
	}
}

func TestClusterHandler(t *testing.T) {
	get := func(h http.Handler) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/cluster", nil))
		var body map[string]any
		if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return rec.Code, body
	}
	// Single node: a 404 in the API's envelope, not an empty cluster.
	if code, body := get(clusterHandler(nil, nil)); code != http.StatusNotFound || body["status"] != "error" || body["errorType"] != "not_found" {
		t.Errorf("single node: %d %v, want 404 not_found", code, body)
	}
	code, body := get(clusterapi.NewStatusHandler(clusterapi.StatusOptions{Membership: consensustest.NewMemory(nil)}))
	data, _ := body["data"].(map[string]any)
	if code != http.StatusOK || body["status"] != "success" || data["leader"] != "n1" || data["term"] != 1.0 {
		t.Fatalf("cluster: %d %v, want success with leader n1 in term 1", code, body)
	}
	members, _ := data["members"].([]any)
	if len(members) != 1 {
		t.Fatalf("members %v, want one", members)
	}
	m, _ := members[0].(map[string]any)
	for _, k := range []string{"id", "address", "state", "commit_index", "applied_index", "last_contact"} {
		if _, ok := m[k]; !ok {
			t.Errorf("member %v has no %q", m, k)
		}
	}
}

// A silence write's credentials reach the request forwarded to the leader.
func TestCallerAuthForwarded(t *testing.T) {
	var forwarded string
	h := withCallerAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := httptest.NewRequest(http.MethodPost, "/internal/alerting/silences", nil)
		forwardCallerAuth(r.Context(), out)
		forwarded = out.Header.Get("Authorization")
	}))
	req := httptest.NewRequest(http.MethodPost, "/api/v2/silences", nil)
	req.Header.Set("Authorization", "Basic b3BlcmF0b3I6c2VjcmV0")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if forwarded != "Basic b3BlcmF0b3I6c2VjcmV0" {
		t.Errorf("forwarded Authorization %q, want the caller's", forwarded)
	}
}

// A follower forwards a silence write to a leader whose API is served over
// TLS with a private CA: trusted through cluster.api_tls_config's ca_file,
// refused without it.
func TestForwardOverTLSWithPrivateCA(t *testing.T) {
	dir := t.TempDir()
	testcert.Write(t, dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	leader := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != alerting.InternalSilencesPath {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"id":"s1","updated_at":"2026-01-02T03:04:05Z"}`)
	}))
	leader.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	leader.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	leader.StartTLS()
	defer leader.Close()

	op := alerting.SilenceOp{ExpireID: "s1"}
	nl := &consensus.NotLeaderError{LeaderID: "n1"}
	for _, tc := range []struct {
		name   string
		caFile string
		ok     bool
	}{
		{"system CAs only", "", false},
		{"api_tls_config.ca_file", filepath.Join(dir, "tls.crt"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Cluster{APITLS: promcommon.TLSConfig{CAFile: tc.caFile}}
			client, err := clusterAPIClient(c)
			if err != nil {
				t.Fatal(err)
			}
			fwd := &alerting.HTTPForwarder{APIURLs: map[string]string{"n1": leader.URL}, Client: client}
			res, err := fwd.Forward(context.Background(), nl, op)
			if tc.ok && (err != nil || res.ID != "s1") {
				t.Fatalf("forward with the CA trusted: (%+v, %v), want silence s1", res, err)
			}
			if !tc.ok && (err == nil || !errors.Is(err, alerting.ErrLeaderUnavailable)) {
				t.Fatalf("forward without the CA: %v, want a certificate error as leader unavailable", err)
			}
		})
	}
	if _, err := clusterAPIClient(&config.Cluster{APITLS: promcommon.TLSConfig{CAFile: filepath.Join(dir, "missing.crt")}}); err == nil || !strings.Contains(err.Error(), "cluster.api_tls_config") {
		t.Errorf("a missing ca_file: %v, want an error naming cluster.api_tls_config", err)
	}
}

// With admin endpoints off the leader takes no configuration over HTTP:
// a follower's forwarded reload fails, saying why and what to do.
func TestForwardedReloadRefusedWithoutAdmin(t *testing.T) {
	leader := httptest.NewServer(refuseForwardedConfig)
	defer leader.Close()
	fwd := &clusterconfig.HTTPForwarder{LeaderURL: func(*consensus.NotLeaderError) (string, bool) { return leader.URL, true }}
	_, err := fwd.Forward(context.Background(), &consensus.NotLeaderError{LeaderID: "n1"}, clusterconfig.Doc{})
	if err == nil || !strings.Contains(err.Error(), "admin.enabled") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("forwarded reload: %v, want a 403 naming admin.enabled", err)
	}
}
