package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
)

// Bodies that decode to far more memory than they take on the wire: a
// run of empty repeated entries (two bytes each in protobuf, three in
// JSON, a hundred-odd bytes each once decoded) just under the default
// 20 MiB request limit, compressed to a few kilobytes.
const amplifiedEntries = 6_500_000

func emptyEntriesProto() []byte { return bytes.Repeat([]byte{0x0a, 0x00}, amplifiedEntries) }

func emptyEntriesJSON(field string) []byte {
	return []byte(`{"` + field + `":[` + strings.Repeat(`{},`, amplifiedEntries-1) + `{}]}`)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// grpcFrame is a gRPC length-prefixed message, already gzip-compressed.
func grpcFrame(gz []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{1}, uint32(len(gz))), gz...)
}

// h2Client speaks HTTP/2 to a gRPC listener, with TLS when tlsConf is set
// and in clear text (h2c) otherwise. It sends gRPC calls as raw frames so
// the test can send pre-compressed messages and thousands of them without
// encoding each.
func h2Client(tlsConf *tls.Config) *http.Client {
	var p http.Protocols
	if tlsConf == nil {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: tlsConf}, Timeout: 2 * time.Minute}
}

// rawGRPCCall sends one OTLP Export call and returns its grpc-status
// ("" if the call failed below gRPC).
func rawGRPCCall(ctx context.Context, c *http.Client, baseURL, service string, frame []byte, authorization string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/"+service+"/Export", bytes.NewReader(frame))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Grpc-Encoding", "gzip")
	req.Header.Set("Te", "trailers")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if st := resp.Header.Get("Grpc-Status"); st != "" { // trailers-only answer
		return st, nil
	}
	return resp.Trailer.Get("Grpc-Status"), nil
}

const (
	grpcOK                = "0"
	grpcResourceExhausted = "8"
	grpcUnavailable       = "14"
	grpcUnauthenticated   = "16"
	traceService          = "opentelemetry.proto.collector.trace.v1.TraceService"
)

// TestReliabilityDecodeAmplification sends the reported reproductions of
// decode amplification, each request a few kilobytes compressed: gzipped
// OTLP/HTTP of empty entries (each signal, protobuf and JSON), a
// remote_write of empty series, and gzipped OTLP/gRPC of the same. Each is
// refused as too large before decoding (they peaked at 4.7 GB and 2.7 GB
// before admission charged decoded size), memory stays under
// limits.memory_limit, and an ordinary request is stored afterwards.
func TestReliabilityDecodeAmplification(t *testing.T) {
	const memLimit = 1 << 30
	rounds, parallel := 1, 3
	if fullReliability() {
		rounds, parallel = 20, 8
	}
	cfg := writeConfig(t, fmt.Sprintf("limits:\n  memory_limit: %dMiB\n", memLimit>>20))
	s := startServer(t, t.TempDir(), "--config", cfg)

	proto := emptyEntriesProto()
	gzProto := gzipBytes(t, proto)
	// Each attack is answered as too large, or, when the requests read at
	// the same moment fill the decode budget, as retryable.
	type attack struct {
		name       string
		send       func(ctx context.Context) (string, error) // the answer, as text
		tooLarge   string
		retryLater string
	}
	httpClient := &http.Client{Timeout: 2 * time.Minute}
	post := func(url, contentType, encoding string, body []byte) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return "", err
			}
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Content-Encoding", encoding)
			resp, err := httpClient.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return fmt.Sprint(resp.StatusCode), nil
		}
	}
	var attacks []attack
	for _, sig := range []struct{ path, field string }{
		{"/v1/traces", "resourceSpans"}, {"/v1/logs", "resourceLogs"}, {"/v1/metrics", "resourceMetrics"},
	} {
		attacks = append(attacks,
			attack{"OTLP/HTTP protobuf " + sig.path, post(s.otlpHTTPURL+sig.path, "application/x-protobuf", "gzip", gzProto), "413", "429"},
			attack{"OTLP/HTTP JSON " + sig.path, post(s.otlpHTTPURL+sig.path, "application/json", "gzip", gzipBytes(t, emptyEntriesJSON(sig.field))), "413", "429"})
	}
	// snappy compresses runs about 20:1, so this one is a megabyte.
	rw := snappy.Encode(nil, proto)
	attacks = append(attacks, attack{"remote_write", post(s.httpURL+"/api/v1/write", "application/x-protobuf", "snappy", rw), "413", "503"})
	grpcClient := h2Client(nil)
	frame := grpcFrame(gzProto)
	attacks = append(attacks, attack{"OTLP/gRPC", func(ctx context.Context) (string, error) {
		return rawGRPCCall(ctx, grpcClient, "http://"+s.grpcA, traceService, frame, "")
	}, grpcResourceExhausted, grpcUnavailable})
	t.Logf("bodies: %d entries, %d bytes gzipped, %d bytes snappy", amplifiedEntries, len(gzProto), len(rw))

	// Every attack at once, parallel requests of each.
	var (
		mu      sync.Mutex
		answers = map[string]map[string]int{}
		wg      sync.WaitGroup
	)
	for _, a := range attacks {
		answers[a.name] = map[string]int{}
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					got, err := a.send(t.Context())
					if err != nil {
						got = "error: " + err.Error()
					}
					mu.Lock()
					answers[a.name][got]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, a := range attacks {
		got := answers[a.name]
		t.Logf("%s: answers %v", a.name, got)
		for answer, n := range got {
			if answer != a.tooLarge && answer != a.retryLater {
				t.Errorf("%s: %d answered %q, want %s (too large) or %s (retry later)", a.name, n, answer, a.tooLarge, a.retryLater)
			}
		}
	}
	// Right after the attack vigil may still be near its memory limit,
	// and then refuses everything as retryable (429), as it should, until
	// the collector has run: ordinary data must go in again within
	// seconds.
	ok := post(s.otlpHTTPURL+"/v1/logs", "application/json", "identity", []byte(
		`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"`+fmt.Sprint(time.Now().UnixNano())+`","body":{"stringValue":"after"}}]}]}]}`))
	waitFor(t, "an ordinary request accepted after the attack", 30*time.Second, func() bool {
		got, err := ok(t.Context())
		return err == nil && got == "200"
	})
	// Alone, with the decode budget free, each is refused as too large: at
	// once, all of one kind can meet a budget the others hold and be told
	// to retry, which is right but says nothing of the size check.
	for _, a := range attacks {
		got, err := a.send(t.Context())
		if err != nil || got != a.tooLarge {
			t.Errorf("%s alone: answered %q (%v), want %s (too large)", a.name, got, err, a.tooLarge)
		}
	}
	rss := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB (cap %d MiB) after %d amplifying requests", rss>>20, memLimit>>20, len(attacks)*rounds*parallel)
	if rss > memLimit {
		t.Errorf("peak RSS %d MiB is above limits.memory_limit %d MiB", rss>>20, memLimit>>20)
	}
	if got := s.metricValue(t, `vigil_rejected_total{reason="request_too_large",signal="traces"}`); got < 1 {
		t.Errorf("vigil_rejected_total{request_too_large,traces} = %v, want the refused requests counted", got)
	}
	// Ordinary data still goes in.
	if got, err := ok(t.Context()); err != nil || got != "200" {
		t.Errorf("ordinary request after the attack: %q (%v), want 200", got, err)
	}
}

// TestReliabilityGRPCUnauthenticatedFlood is the reported reproduction:
// hundreds of concurrent unauthenticated OTLP/gRPC calls, each a gzipped
// message that inflates to 13 MB (500 of them peaked at 4.7 GB when the
// message was read and inflated before authentication). Every call is
// refused UNAUTHENTICATED, memory stays under limits.memory_limit, and an
// authenticated call still gets through.
func TestReliabilityGRPCUnauthenticatedFlood(t *testing.T) {
	const memLimit = 1 << 30
	calls, rounds := 300, 1
	if fullReliability() {
		calls, rounds = 500, 10
	}
	a := startAuthServer(t, fmt.Sprintf("limits:\n  memory_limit: %dMiB\n", memLimit>>20))
	frame := grpcFrame(gzipBytes(t, emptyEntriesProto()))
	client := h2Client(&tls.Config{RootCAs: a.pool})
	base := "https://" + a.grpcAddr

	var (
		mu      sync.Mutex
		answers = map[string]int{}
		sent    atomic.Int64
	)
	for range rounds {
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				auth := []string{"", "Bearer wrong-token", "Basic cmVhZGVyOm5vcGU="}[i%3] // reader:nope
				st, err := rawGRPCCall(t.Context(), client, base, traceService, frame, auth)
				sent.Add(int64(len(frame)))
				if err != nil {
					st = "transport error"
				}
				mu.Lock()
				answers[st]++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	rss := peakRSS(t, a.cmd.Process.Pid)
	t.Logf("%d unauthenticated calls (%d MiB on the wire, %d MiB inflated): answers %v; peak RSS %d MiB (cap %d MiB)",
		calls*rounds, sent.Load()>>20, int64(calls*rounds)*2*amplifiedEntries>>20, answers, rss>>20, memLimit>>20)
	for st, n := range answers {
		if st != grpcUnauthenticated {
			t.Errorf("%d calls answered %q; every unauthenticated call must get UNAUTHENTICATED (%s)", n, st, grpcUnauthenticated)
		}
	}
	if rss > memLimit {
		t.Errorf("peak RSS %d MiB is above limits.memory_limit %d MiB", rss>>20, memLimit>>20)
	}
	// The collector's token still works on the same listener.
	ok := grpcFrame(gzipBytes(t, nil)) // an empty ExportTraceServiceRequest
	if st, err := rawGRPCCall(t.Context(), client, base, traceService, ok, a.cred("collector").header); err != nil || st != grpcOK {
		t.Errorf("authenticated call after the flood: status %q (%v), want OK", st, err)
	}
}

// TestReliabilityScrapeEndlessBody scrapes a target whose body never ends,
// with no body_size_limit configured (it reached 1.75 GB against a 1 GiB
// cap): the default limit stops the read, the target reports why, and
// memory stays under limits.memory_limit.
func TestReliabilityScrapeEndlessBody(t *testing.T) {
	const memLimit = 1 << 30
	var (
		mu      sync.Mutex
		maxSent int64
	)
	line := []byte(strings.Repeat("endless_metric{label=\"a value that makes the line long\"} 1\n", 64))
	target := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var n int64
		for r.Context().Err() == nil {
			m, err := w.Write(line)
			n += int64(m)
			if err != nil {
				break
			}
		}
		mu.Lock()
		maxSent = max(maxSent, n)
		mu.Unlock()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = target.Serve(ln) }()
	t.Cleanup(func() { _ = target.Close() })

	cfg := writeConfig(t, fmt.Sprintf(`limits:
  memory_limit: %dMiB
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: endless
    static_configs:
      - targets: [%q]
`, memLimit>>20, ln.Addr().String()))
	s := startServer(t, t.TempDir(), "--config", cfg)

	var lastError string
	waitFor(t, "the endless target to be scraped and refused", 90*time.Second, func() bool {
		var body struct {
			Data struct {
				ActiveTargets []struct {
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if s.getJSON(t, "/api/v1/targets", &body) != http.StatusOK || len(body.Data.ActiveTargets) != 1 {
			return false
		}
		lastError = body.Data.ActiveTargets[0].LastError
		return lastError != ""
	})
	if !strings.Contains(lastError, "body size limit") {
		t.Errorf("target error %q, want the body size limit named", lastError)
	}
	mu.Lock()
	sent := maxSent
	mu.Unlock()
	rss := peakRSS(t, s.cmd.Process.Pid)
	// The target may send far more than the limit: past it Prometheus's
	// scraper discards the rest until the scrape times out, without
	// holding it. What it holds is the limit.
	t.Logf("target error %q; at most %d MiB sent in one scrape; peak RSS %d MiB (cap %d MiB)", lastError, sent>>20, rss>>20, memLimit>>20)
	if rss > memLimit {
		t.Errorf("peak RSS %d MiB is above limits.memory_limit %d MiB", rss>>20, memLimit>>20)
	}
}
