// Package chtest runs real clickhouse-server processes for tests: one
// server, or several as the shards of one cluster. Tests need the
// clickhouse-server binary (Debian's package; .ci/run installs it) and fail,
// rather than skip, without it.
package chtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/vigil-observability/vigil/internal/testport"
)

// ClusterName is the cluster every server of StartCluster knows.
const ClusterName = "vigil"

// Server is one clickhouse-server process.
type Server struct {
	// TCPAddr is the native protocol's host:port.
	TCPAddr string
	// Dir holds the server's config, data and log.
	Dir string

	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	cluster []string // TCP addresses of the cluster's shards, this one included
	opts    Options
}

// Options configure the servers of StartClusterWith.
type Options struct {
	// Shards is the number of servers (1 when zero).
	Shards int
	// User and Password, when User is set, are the one account that can
	// log in: the default user gets a password nothing knows, so that a
	// connection without these credentials is refused. The cluster's
	// remote_servers carry them too, for the Distributed tables.
	User, Password string
}

// DSN is a clickhouse-go DSN for database db on this server, with the
// server's credentials when it has some.
func (s *Server) DSN(db string) string {
	return "clickhouse://" + s.userInfo() + s.TCPAddr + "/" + db
}

func (s *Server) userInfo() string {
	if s.opts.User == "" {
		return ""
	}
	return url.UserPassword(s.opts.User, s.opts.Password).String() + "@"
}

// Start runs a clickhouse-server for the test; it stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartCluster(t, 1)[0]
}

// StartCluster runs n servers, each configured with the cluster
// ClusterName of n shards (one server each), for Distributed tables.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	return StartClusterWith(t, Options{Shards: n})
}

// StartClusterWith runs the servers opts describe, as StartCluster does.
func StartClusterWith(t testing.TB, opts Options) []*Server {
	t.Helper()
	n := max(opts.Shards, 1)
	bin := binary(t)
	servers := make([]*Server, n)
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = testport.Addr(t)
		servers[i] = &Server{TCPAddr: addrs[i], Dir: t.TempDir(), t: t, opts: opts}
	}
	for _, s := range servers {
		s.cluster = addrs
		if err := s.writeConfig(); err != nil {
			t.Fatal(err)
		}
		s.start(bin)
		t.Cleanup(s.Stop)
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

// binary finds clickhouse-server.
func binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("clickhouse-server not found: install it (apt-get install clickhouse-server; .ci/run does)")
	return ""
}

var configTemplate = template.Must(template.New("config").Parse(`<yandex>
  <logger>
    <level>warning</level>
    <log>{{.Dir}}/server.log</log>
    <errorlog>{{.Dir}}/server.err.log</errorlog>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{{.Port}}</tcp_port>
  <http_port>{{.HTTPPort}}</http_port>
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
  <users_config>{{.Dir}}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <remote_servers>
    <{{.Cluster}}>{{range .Shards}}
      <shard><replica><host>{{.Host}}</host><port>{{.Port}}</port>{{if $.User}}<user>{{$.User}}</user><password>{{$.Password}}</password>{{end}}</replica></shard>{{end}}
    </{{.Cluster}}>
  </remote_servers>
</yandex>
`))

// usersTemplate has the default user without a password, or, with a User,
// that user and a default user nobody can log in as.
var usersTemplate = template.Must(template.New("users").Parse(`<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password>{{if .User}}{{.Locked}}{{end}}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>{{if .User}}
    <{{.User}}>
      <password>{{.Password}}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </{{.User}}>{{end}}
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`))

type shard struct{ Host, Port string }

func (s *Server) writeConfig() error {
	_, port, err := net.SplitHostPort(s.TCPAddr)
	if err != nil {
		return err
	}
	_, httpPort, err := net.SplitHostPort(testport.Addr(s.t))
	if err != nil {
		return err
	}
	var shards []shard
	for _, a := range s.cluster {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return err
		}
		shards = append(shards, shard{h, p})
	}
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, map[string]any{
		"Dir": s.Dir, "Port": port, "HTTPPort": httpPort, "Cluster": ClusterName, "Shards": shards,
		"User": s.opts.User, "Password": s.opts.Password,
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "config.xml"), b.Bytes(), 0o644); err != nil {
		return err
	}
	b.Reset()
	if err := usersTemplate.Execute(&b, map[string]any{
		"User": s.opts.User, "Password": s.opts.Password, "Locked": fmt.Sprintf("locked-%d", time.Now().UnixNano()),
	}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "users.xml"), b.Bytes(), 0o644)
}

func (s *Server) start(bin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	out, err := os.Create(filepath.Join(s.Dir, "stdout.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start clickhouse-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
}

// waitReady blocks until the server answers a query.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			s.t.Fatalf("clickhouse-server exited during start-up:\n%s", s.logTail())
		default:
		}
		if last = s.ping(); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("clickhouse-server at %s not ready within 60s: %v\n%s", s.TCPAddr, last, s.logTail())
}

func (s *Server) ping() error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.TCPAddr}, DialTimeout: time.Second,
		Auth: clickhouse.Auth{Username: s.opts.User, Password: s.opts.Password}})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "server.err.log"} {
		data, _ := os.ReadFile(filepath.Join(s.Dir, name))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, data)
	}
	return b.String()
}

// Stop kills the server (SIGKILL: tests of acknowledged data want the
// harshest stop) and waits for it to exit. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server and starts it again on the same address and
// data, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(binary(s.t))
	s.waitReady()
}
