// Package etcdtest runs real etcd servers for tests: one or three
// processes of the etcd binary on free loopback ports, each in its own
// temporary directory, stopped when the test ends.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/testport"
)

// Binary is the etcd server the tests start; ETCD_BIN overrides the one
// found on PATH.
func Binary() string {
	if b := os.Getenv("ETCD_BIN"); b != "" {
		return b
	}
	b, err := exec.LookPath("etcd")
	if err != nil {
		return ""
	}
	return b
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	members []*member
	certs   *certs
}

type member struct {
	name, dir          string
	clientURL, peerURL string
	args               []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Start starts an etcd cluster of size members and waits until every
// member answers its health check. It skips the test when the etcd binary
// is absent, and fails it when etcd does not come up.
func Start(t testing.TB, size int) *Cluster {
	t.Helper()
	return start(t, size, nil)
}

// StartTLS is Start with the members' client URLs served over TLS, with a
// certificate for 127.0.0.1 from a CA made for the test; the tls.Config
// returned trusts that CA.
func StartTLS(t testing.TB, size int) (*Cluster, *tls.Config) {
	t.Helper()
	if Binary() == "" {
		t.Skip("etcd server binary not found on PATH (install etcd-server, or set ETCD_BIN)")
	}
	certs := newCerts(t)
	return start(t, size, certs), certs.client
}

func start(t testing.TB, size int, certs *certs) *Cluster {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("etcd server binary not found on PATH (install etcd-server, or set ETCD_BIN)")
	}
	c := &Cluster{t: t, certs: certs}
	scheme := "http://"
	if certs != nil {
		scheme = "https://"
	}
	var initial []string
	for i := range size {
		m := &member{
			name:      fmt.Sprintf("etcd%d", i),
			dir:       t.TempDir(),
			clientURL: scheme + testport.Addr(t),
			peerURL:   "http://" + testport.Addr(t),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name,
			"--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "vigil-test",
			// Short timeouts: a killed member is noticed within a second.
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap",
			"--log-level", "warn",
		}
		if certs != nil {
			m.args = append(m.args, "--cert-file", certs.certFile, "--key-file", certs.keyFile)
		}
	}
	t.Cleanup(c.stopAll)
	for _, m := range c.members {
		if err := m.start(bin); err != nil {
			t.Fatalf("start %s: %v", m.name, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range c.members {
		if err := m.waitHealthy(deadline, c.httpClient()); err != nil {
			t.Fatalf("%s did not become healthy: %v\n%s", m.name, err, m.output())
		}
	}
	return c
}

func (c *Cluster) httpClient() *http.Client {
	client := &http.Client{Timeout: time.Second}
	if c.certs != nil {
		client.Transport = &http.Transport{TLSClientConfig: c.certs.client}
	}
	return client
}

func (m *member) start(bin string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(bin, m.args...)
	m.out = &bytes.Buffer{}
	cmd.Stdout = m.out
	cmd.Stderr = m.out
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	done := m.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return nil
}

func (m *member) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out == nil {
		return ""
	}
	if m.done != nil {
		select {
		case <-m.done:
			return m.out.String()
		default:
		}
	}
	return "(still running)"
}

func (m *member) waitHealthy(deadline time.Time, client *http.Client) error {
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("exited")
		default:
		}
		resp, err := client.Get(m.clientURL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("deadline passed: %w", last)
}

// Endpoints are the client URLs of every member, stopped ones included.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Leader is the index of the member etcd's own Raft names leader, as the
// first live member that answers says; -1 when none answers or none leads.
func (c *Cluster) Leader() int {
	for _, m := range c.members {
		select {
		case <-m.done:
			continue
		default:
		}
		id, leader, err := m.status(c.httpClient())
		if err != nil || leader == 0 {
			continue
		}
		if id == leader {
			return slices.Index(c.members, m)
		}
		for i, o := range c.members {
			if oid, _, err := o.status(c.httpClient()); err == nil && oid == leader {
				return i
			}
		}
	}
	return -1
}

// status asks the member for its own id and its leader's through the
// JSON gateway of the maintenance API, which every etcd v3 serves.
func (m *member) status(client *http.Client) (id, leader uint64, err error) {
	resp, err := client.Post(m.clientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status: %s", resp.Status)
	}
	// The gateway prints 64-bit integers as strings.
	var st struct {
		Header struct {
			MemberID uint64 `json:"member_id,string"`
		} `json:"header"`
		Leader uint64 `json:"leader,string"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, 0, err
	}
	return st.Header.MemberID, st.Leader, nil
}

// Kill stops member i at once (SIGKILL), as a crash would.
func (c *Cluster) Kill(i int) {
	c.members[i].kill()
}

// Restart starts a killed member i again on its data directory and
// waits until it answers its health check.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.members[i]
	if err := m.start(Binary()); err != nil {
		c.t.Fatalf("restart %s: %v", m.name, err)
	}
	if err := m.waitHealthy(time.Now().Add(20*time.Second), c.httpClient()); err != nil {
		c.t.Fatalf("%s did not become healthy: %v", m.name, err)
	}
}

func (m *member) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (c *Cluster) stopAll() {
	for _, m := range c.members {
		m.kill()
	}
	if c.t.Failed() {
		for _, m := range c.members {
			c.t.Logf("%s output:\n%s", m.name, m.output())
		}
	}
}

// WaitHealthy waits until every member not killed answers its health
// check, or ctx ends.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(20 * time.Second)
	}
	for _, m := range c.members {
		select {
		case <-m.done:
			continue
		default:
		}
		if err := m.waitHealthy(deadline, c.httpClient()); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}
