package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/testport"
)

// These tests run real log agents, configured as docs/logs.md shows, that
// ship to vigil as they would to Elasticsearch: at the web listener's
// root, as an agent given a bare host and port calls it.

// esRecord is a record read back through the logs API.
type esRecord struct {
	Timestamp string         `json:"timestamp"`
	Severity  string         `json:"severity"`
	Body      string         `json:"body"`
	Service   string         `json:"service"`
	Resource  map[string]any `json:"resource"`
	Attrs     map[string]any `json:"attributes"`
}

// indexLogs waits until the logs API holds want records written to index
// and returns them, having checked that the Loki query API answers each
// too; it fails the test if they do not all arrive in time.
func indexLogs(t *testing.T, s *server, index string, want int, within time.Duration) []esRecord {
	t.Helper()
	q := url.Values{"limit": {"1000"}, "attr.elasticsearch.index": {index}}
	var got []esRecord
	deadline := time.Now().Add(within)
	for {
		var lr struct {
			Data []esRecord `json:"data"`
		}
		if code := s.getJSON(t, "/api/logs?"+q.Encode(), &lr); code != http.StatusOK {
			t.Fatalf("logs of index %s: HTTP %d", index, code)
		}
		got = lr.Data
		if len(got) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != want {
		t.Fatalf("index %s: %d records read back within %s, want %d: %+v", index, len(got), within, want, got)
	}
	// Every line reads back through the Loki query API as well, as
	// Grafana reads it.
	lines := s.lokiLines(t, `{service_name=~".+"} | elasticsearch_index="`+index+`"`)
	for _, r := range got {
		if _, ok := lines[r.Body]; !ok {
			t.Fatalf("index %s: %q is not in the Loki API's answer (%d lines)", index, r.Body, len(lines))
		}
	}
	return got
}

// agent is a log agent's process, stopped (SIGTERM, then killed) when the
// test ends; its output is shown if the test failed.
type agent struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startAgent(t *testing.T, name string, cmd *exec.Cmd) *agent {
	t.Helper()
	a := &agent{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, a.out.String())
		}
	})
	return a
}

// running fails the test if the agent has exited.
func (a *agent) running(t *testing.T, name string) {
	t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
		t.Fatalf("%s exited: %v\n%s", name, err, a.out.String())
	default:
	}
}

// lookAgent finds an agent's binary: the environment variable env (a path)
// if set, else name in PATH, in /usr/sbin or /sbin, else the first of
// also that exists; the test is skipped when there is none.
func lookAgent(t *testing.T, env, name string, also ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range append([]string{filepath.Join("/usr/sbin", name), filepath.Join("/sbin", name)}, also...) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s is not installed (or set %s to its path)", name, env)
	return ""
}

func hostPort(t *testing.T, s *server) (string, string) {
	t.Helper()
	u, err := url.Parse(s.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), u.Port()
}

// TestRsyslogIntoVigil runs rsyslogd with omelasticsearch in bulk mode,
// pointed at vigil's host and port, and logs through it with logger(1):
// every line is readable back, once through the ECS template docs/logs.md
// gives (host, service and level mapped) and once through the module's
// default template (host and level mapped from its own field names).
func TestRsyslogIntoVigil(t *testing.T) {
	bin := lookAgent(t, "VIGIL_RSYSLOGD", "rsyslogd")
	loggerBin, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("logger(1) is not installed")
	}
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	host, port := hostPort(t, s)
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(rsyslogConf, dir, sock, host, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so"); err != nil {
		if out, err := exec.Command(bin, "-N1", "-f", conf).CombinedOutput(); err != nil && bytes.Contains(out, []byte("omelasticsearch")) {
			t.Skipf("rsyslog's omelasticsearch module is not installed (Debian: rsyslog-elasticsearch): %s", out)
		}
	}
	start := time.Now()
	a := startAgent(t, "rsyslogd", exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
	waitFor(t, "rsyslogd's socket", 10*time.Second, func() bool {
		a.running(t, "rsyslogd")
		_, err := os.Stat(sock)
		return err == nil
	})

	const n = 50
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "payment %d declined: card expired\n", i)
	}
	cmd := exec.Command(loggerBin, "-u", sock, "-t", "checkout", "-p", "user.warning")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v\n%s", err, out)
	}

	for _, index := range []string{"rsyslog-ecs", "rsyslog-default"} {
		seen := map[string]bool{}
		for _, r := range indexLogs(t, s, index, n, 20*time.Second) {
			seen[r.Body] = true
			ts, err := time.Parse(time.RFC3339Nano, r.Timestamp)
			if err != nil || ts.Before(start.Add(-2*time.Second)) || ts.After(time.Now().Add(2*time.Second)) {
				t.Errorf("%s: timestamp %q is not the time it was logged (%v)", index, r.Timestamp, err)
			}
			if r.Resource["host.name"] != "web-01" || r.Severity == "" || !strings.HasPrefix(strings.ToLower(r.Severity), "warn") {
				t.Errorf("%s: host or level not mapped: %+v", index, r)
			}
			if index == "rsyslog-ecs" && r.Service != "checkout" {
				t.Errorf("%s: service %q, want checkout: %+v", index, r.Service, r)
			}
		}
		for i := range n {
			want := fmt.Sprintf("payment %d declined: card expired", i)
			if index == "rsyslog-default" {
				// The default template sends rsyslog's MSG as it is, with
				// the space that follows the tag ("checkout: ..."), and
				// vigil keeps a message as sent, as Elasticsearch does.
				want = " " + want
			}
			if !seen[want] {
				t.Errorf("%s: line %q not read back as sent (have %d distinct bodies: %q)", index, want, len(seen), slices.Collect(maps.Keys(seen)))
			}
		}
	}
	t.Logf("rsyslog: %d lines through two actions in %s", n, time.Since(start).Round(time.Millisecond))
}

// rsyslogConf is a private rsyslog configuration: work directory, a unix
// socket of its own (not /dev/log), vigil's host and port. The ECS
// template is docs/logs.md's.
const rsyslogConf = `global(workDirectory=%q localHostname="web-01")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%q)
module(load="omelasticsearch")

template(name="ecs" type="list" option.jsonf="on") {
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host.name" name="hostname" format="jsonf")
  property(outname="service.name" name="programname" format="jsonf")
  property(outname="log.level" name="syslogseverity-text" format="jsonf")
  property(outname="message" name="msg" format="jsonf"
           regex.type="ERE" regex.expression="^ ?(.*)$" regex.submatch="1")
}

ruleset(name="vigil") {
  action(type="omelasticsearch" server=%[3]q serverport=%[4]q
         searchIndex="rsyslog-ecs" template="ecs" bulkmode="on" esVersion.major="8")
  action(type="omelasticsearch" server=%[3]q serverport=%[4]q
         searchIndex="rsyslog-default" bulkmode="on" esVersion.major="8")
}
*.* call vigil
`

// TestSyslogNGIntoVigil runs syslog-ng with its elasticsearch-http()
// destination pointed at vigil's /_bulk, as a relay that receives syslog
// over TCP: every line is readable back, with its sender's host and
// program as host and service, from syslog-ng's default template (its
// macros' names: HOST, PROGRAM, MESSAGE, PRIORITY).
func TestSyslogNGIntoVigil(t *testing.T) {
	// .ci/run unpacks it there: Debian's syslog-ng conflicts with rsyslog.
	var unpacked []string
	if cache, err := os.UserCacheDir(); err == nil {
		unpacked = append(unpacked, filepath.Join(cache, "vigil-ci", "syslog-ng", "usr", "sbin", "syslog-ng"))
	}
	bin := lookAgent(t, "VIGIL_SYSLOG_NG", "syslog-ng", unpacked...)
	// Its modules and SCL are found relative to the binary, so that a copy
	// unpacked outside /usr runs as well as an installed one.
	prefix := filepath.Dir(filepath.Dir(bin))
	modules, _ := filepath.Glob(filepath.Join(prefix, "lib", "syslog-ng", "3.*", "libhttp.so"))
	scl := filepath.Join(prefix, "share", "syslog-ng", "include", "scl", "elasticsearch", "elastic-http.conf")
	if len(modules) == 0 {
		t.Skipf("syslog-ng's http module is not installed (Debian: syslog-ng-mod-http) under %s", prefix)
	}
	if _, err := os.Stat(scl); err != nil {
		t.Skipf("syslog-ng's elasticsearch-http() block is not installed (Debian: syslog-ng-scl): %v", err)
	}
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	host, port := hostPort(t, s)
	dir := t.TempDir()
	src := testport.Addr(t)
	_, srcPort, _ := net.SplitHostPort(src)
	conf := filepath.Join(dir, "syslog-ng.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(syslogNGConf, scl, srcPort, "http://"+net.JoinHostPort(host, port)+"/_bulk")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-e", "--no-caps", "-f", conf,
		"--module-path", filepath.Dir(modules[0]),
		"-R", filepath.Join(dir, "persist"), "-p", filepath.Join(dir, "pid"), "-c", filepath.Join(dir, "ctl"))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(prefix, "lib", "syslog-ng"))
	start := time.Now()
	a := startAgent(t, "syslog-ng", cmd)
	var conn net.Conn
	waitFor(t, "syslog-ng's TCP source", 10*time.Second, func() bool {
		a.running(t, "syslog-ng")
		c, err := net.Dial("tcp", src)
		conn = c
		return err == nil
	})
	const n = 40
	w := bufio.NewWriter(conn)
	for i := range n {
		// RFC 3164, as a host's syslog daemon forwards it.
		fmt.Fprintf(w, "<12>%s web-02 checkout[4242]: refund %d queued for review\n", time.Now().Format(time.Stamp), i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, r := range indexLogs(t, s, "syslog-ng", n, 20*time.Second) {
		seen[r.Body] = true
		ts, err := time.Parse(time.RFC3339Nano, r.Timestamp)
		if err != nil || ts.Before(start.Add(-2*time.Second)) || ts.After(time.Now().Add(2*time.Second)) {
			t.Errorf("timestamp %q is not the time it was logged (%v)", r.Timestamp, err)
		}
		if r.Resource["host.name"] != "web-02" || r.Service != "checkout" || !strings.HasPrefix(strings.ToLower(r.Severity), "warn") {
			t.Errorf("host, service or level not mapped: %+v", r)
		}
		if r.Attrs["PID"] != "4242" {
			t.Errorf("PID not kept as an attribute: %+v", r)
		}
	}
	for i := range n {
		if want := fmt.Sprintf("refund %d queued for review", i); !seen[want] {
			t.Errorf("line %q not read back as sent (have %q)", want, slices.Collect(maps.Keys(seen)))
		}
	}
	t.Logf("syslog-ng: %d lines in %s", n, time.Since(start).Round(time.Millisecond))
}

// syslogNGConf is a private syslog-ng configuration: a TCP source on a
// free port and docs/logs.md's destination, with the block included from
// the installation's SCL.
const syslogNGConf = `@version: 3.38
@include %q
options { keep-hostname(yes); use-dns(no); stats-freq(0); };
source s_net { network(ip("127.0.0.1") port(%s) transport("tcp")); };
destination d_vigil {
  elasticsearch-http(url(%q) index("syslog-ng") type(""));
};
log { source(s_net); destination(d_vigil); };
`

// TestElasticsearchNodeClientIntoVigil ships logs with the official
// Elasticsearch Node.js client (@elastic/elasticsearch 8, its bulk helper
// and its single-document index call) pointed at vigil's web address: its
// product check passes on vigil's answers, and every document is readable
// back with its service and host.
func TestElasticsearchNodeClientIntoVigil(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir := installNodeModules(t, filepath.Join("testdata", "esnode"))
	s := startServer(t, filepath.Join(t.TempDir(), "data"))
	const n = 200
	start := time.Now()
	cmd := exec.Command(node, "ship.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VIGIL_URL="+s.httpURL, fmt.Sprintf("LINES=%d", n), "INDEX=node-app")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ship.js: %v\n%s", err, stderr.String())
	}
	var sum struct {
		Version                   string
		Total, Successful, Failed int
		Dropped                   []any
		Single                    string
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("ship.js printed %q: %v", out, err)
	}
	if sum.Version == "" || sum.Total != n || sum.Successful != n || sum.Failed != 0 || len(sum.Dropped) != 0 || sum.Single != "created" {
		t.Fatalf("client summary %+v: want version, %d of %d acknowledged, the single document created", sum, n, n)
	}
	seen := map[string]bool{}
	for _, r := range indexLogs(t, s, "node-app", n+1, 10*time.Second) {
		seen[r.Body] = true
		if r.Service != "cart" || r.Resource["host.name"] != "web-03" {
			t.Errorf("service or host not mapped: %+v", r)
		}
	}
	for i := range n {
		if want := fmt.Sprintf("cart %d checked out", i); !seen[want] {
			t.Errorf("document %q not read back", want)
		}
	}
	if !seen["cart single document"] {
		t.Error("the single document (POST /node-app/_doc) not read back")
	}
	t.Logf("@elastic/elasticsearch: %d documents in %s", n+1, time.Since(start).Round(time.Millisecond))
}

// installNodeModules runs npm ci for the package in src (its
// package-lock.json) once per lock file: in a cache directory named by the
// hash of the package's files, reused by later runs, and made afresh on a
// new machine. It returns the directory, which holds src's files too.
func installNodeModules(t *testing.T, src string) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed")
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(b))
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "vigil-test", filepath.Base(src)+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return dir
	}
	// Installed beside, then renamed into place: a run that stops
	// half-way, or one running at the same time, leaves no half-installed
	// directory behind at dir.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", src, err, out)
	}
	t.Logf("npm ci for %s: %s (cached in %s)", src, time.Since(start).Round(time.Millisecond), dir)
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); serr != nil {
			t.Fatal(err)
		}
		// Another run installed it first.
	}
	return dir
}

// Elasticsearch's API at the root of a listener with authentication:
// every call an agent makes there needs the ingest role, whatever the
// method, while a browser's GET / is the UI's and needs read.
func TestAuthElasticsearchRoot(t *testing.T) {
	a := startAuthServer(t)
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	bulk := []byte("{\"create\":{\"_index\":\"authed\"}}\n{\"message\":\"hello\"}\n")
	for _, c := range []struct {
		method, path, accept string
		body                 []byte
		need                 auth.Role
		status               int // with the role
	}{
		{"GET", "/", "", nil, auth.RoleIngest, http.StatusOK},
		{"HEAD", "/", "", nil, auth.RoleIngest, http.StatusOK},
		{"GET", "/", browser, nil, auth.RoleRead, http.StatusOK},
		{"GET", "/_license", "", nil, auth.RoleIngest, http.StatusOK},
		{"PUT", "/_index_template/authed", "", []byte(`{"index_patterns":["authed-*"]}`), auth.RoleIngest, http.StatusOK},
		{"DELETE", "/_ilm/policy/authed", "", nil, auth.RoleIngest, http.StatusOK},
		{"POST", "/_bulk", "", bulk, auth.RoleIngest, http.StatusOK},
		{"POST", "/authed/_doc", "", []byte(`{"message":"one"}`), auth.RoleIngest, http.StatusCreated},
	} {
		creds := append([]authCred{{name: "nobody"}}, a.creds...)
		// Elasticsearch's API keys: id:key is a basic user, else a token.
		creds = append(creds,
			authCred{"reader's API key", "ApiKey " + base64.StdEncoding.EncodeToString([]byte("reader:reader-pass")), []auth.Role{auth.RoleRead}},
			authCred{"collector's token as an API key", "ApiKey collector-token", []auth.Role{auth.RoleIngest}},
		)
		for _, cred := range creds {
			req, err := http.NewRequest(c.method, a.httpsURL+c.path, bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			if cred.header != "" {
				req.Header.Set("Authorization", cred.header)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := a.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := c.status
			switch {
			case cred.header == "":
				want = http.StatusUnauthorized
			case !cred.has(c.need):
				want = http.StatusForbidden
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s (Accept %q) as %s: %d, want %d", c.method, c.path, c.accept, cred.name, resp.StatusCode, want)
			}
			if want/100 == 2 && (c.need == auth.RoleIngest) != (resp.Header.Get("X-Elastic-Product") == "Elasticsearch") {
				t.Errorf("%s %s (Accept %q) as %s: answered by the wrong handler (X-Elastic-Product %q)", c.method, c.path, c.accept, cred.name, resp.Header.Get("X-Elastic-Product"))
			}
		}
	}
}
