package vigil

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/sdk/registry"
)

// fakeAgent emulates the Consul agent endpoints vigil's registry serves:
// register, a TTL check's update (404 for an unknown check), deregister.
// The real handler is exercised by internal/registry/consulapi's
// TestSDKRegistration.
type fakeAgent struct {
	mu        sync.Mutex
	regs      []map[string]any
	updates   []string // statuses
	dereg     []string
	known     map[string]bool
	authorize []string
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authorize = append(f.authorize, r.Header.Get("Authorization"))
	switch {
	case r.URL.Path == "/v1/agent/service/register":
		var reg map[string]any
		_ = json.NewDecoder(r.Body).Decode(&reg)
		f.regs = append(f.regs, reg)
		f.known["service:"+reg["ID"].(string)] = true
	case len(r.URL.Path) > len("/v1/agent/check/update/") && r.URL.Path[:len("/v1/agent/check/update/")] == "/v1/agent/check/update/":
		id := r.URL.Path[len("/v1/agent/check/update/"):]
		if !f.known[id] {
			http.Error(w, "no check", http.StatusNotFound)
			return
		}
		var b struct{ Status string }
		_ = json.NewDecoder(r.Body).Decode(&b)
		f.updates = append(f.updates, b.Status)
	case len(r.URL.Path) > len("/v1/agent/service/deregister/"):
		f.dereg = append(f.dereg, r.URL.Path[len("/v1/agent/service/deregister/"):])
	}
}

// TestRegistrationWhileServing: with Registration on, Serve registers the
// instance at its listener's port with the service's name and version,
// heartbeats, and deregisters as it stops.
func TestRegistrationWhileServing(t *testing.T) {
	agent := &fakeAgent{known: map[string]bool{}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	env := map[string]string{"VIGIL_URL": srv.URL, "VIGIL_BEARER_TOKEN": "tok"}
	svc, err := Start(t.Context(), Config{
		ServiceName: "shop", ServiceVersion: "1.4.2", Endpoint: "127.0.0.1:1", LogOutput: io.Discard,
		ShutdownGrace: time.Millisecond, FlushTimeout: 100 * time.Millisecond, getenv: func(k string) string { return env[k] },
		Registration: Registration{Enabled: true, ID: "shop-1", Meta: map[string]string{"zone": "eu-1"},
			TTL: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	svc.Mount(mux)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, []net.Listener{ln}, svc.NewServer("", mux)) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		agent.mu.Lock()
		n := len(agent.updates)
		agent.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeats")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done

	agent.mu.Lock()
	defer agent.mu.Unlock()
	if len(agent.regs) != 1 {
		t.Fatalf("%d registrations", len(agent.regs))
	}
	reg := agent.regs[0]
	meta, _ := reg["Meta"].(map[string]any)
	if reg["ID"] != "shop-1" || reg["Name"] != "shop" || reg["Port"] != float64(port) || meta["version"] != "1.4.2" || meta["zone"] != "eu-1" {
		t.Fatalf("registration %v (port %d)", reg, port)
	}
	check, _ := reg["Check"].(map[string]any)
	if check["TTL"] != "300ms" || check["Status"] != "passing" {
		t.Fatalf("check %v", check)
	}
	if agent.updates[0] != "passing" {
		t.Fatalf("heartbeats %v", agent.updates)
	}
	if len(agent.dereg) != 1 || agent.dereg[0] != "shop-1" {
		t.Fatalf("deregistered %v", agent.dereg)
	}
	for _, a := range agent.authorize {
		if a != "Bearer tok" {
			t.Fatalf("Authorization %q", a)
		}
	}
}

// TestRegistrationOffByDefault: VIGIL_URL alone (the configuration
// centre's) does not register; Register is then a no-op.
func TestRegistrationOffByDefault(t *testing.T) {
	agent := &fakeAgent{known: map[string]bool{}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	env := map[string]string{"VIGIL_URL": srv.URL}
	svc, err := Start(t.Context(), Config{ServiceName: "shop", Endpoint: "127.0.0.1:1", LogOutput: io.Discard,
		getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = svc.Shutdown(ctx)
	}()
	if err := svc.Register(8080); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	agent.mu.Lock()
	defer agent.mu.Unlock()
	if len(agent.regs)+len(agent.updates) != 0 {
		t.Fatalf("registered: %v", agent.regs)
	}
}

// TestClientRegistersAgainAfter404: a heartbeat answered 404 (vigil
// restarted and forgot the instance) is followed by a new registration.
func TestClientRegistersAgainAfter404(t *testing.T) {
	agent := &fakeAgent{known: map[string]bool{}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	c, err := registry.New(registry.Options{URL: srv.URL, Service: "shop", ID: "i-" + strconv.Itoa(1),
		TTL: 150 * time.Millisecond, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	defer c.Close(context.Background())
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			agent.mu.Lock()
			ok := cond()
			agent.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("timed out waiting for " + what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("a heartbeat", func() bool { return len(agent.updates) > 0 })
	agent.mu.Lock()
	agent.known = map[string]bool{} // vigil restarted
	agent.mu.Unlock()
	wait("a second registration", func() bool { return len(agent.regs) == 2 })
}
