package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowClientsDoNotHoldTheServer: hundreds of clients that open a
// connection and send their headers never to finish (slowloris) neither stop
// others from being served, on the UI/API listener and on OTLP/HTTP, nor
// keep their connections: the server drops them once the header timeout
// passes.
func TestSlowClientsDoNotHoldTheServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	const slow = 200
	for _, base := range []string{s.httpURL, s.otlpHTTPURL} {
		addr := strings.TrimPrefix(base, "http://")
		conns := make([]net.Conn, 0, slow)
		for range slow {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := io.WriteString(c, "POST /v1/traces HTTP/1.1\r\nHost: vigil\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		// Others are served meanwhile.
		client := &http.Client{Timeout: 30 * time.Second}
		resp, err := client.Get(base + "/-/ready")
		if base == s.otlpHTTPURL {
			// The OTLP listener serves only its paths: any HTTP answer
			// shows it is not held up.
			resp, err = client.Post(base+"/v1/traces", "application/json", strings.NewReader(`{"resourceSpans":[]}`))
		}
		if err != nil {
			t.Fatalf("%s while %d slow clients hold connections: %v", base, slow, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s answered %d while slow clients hold connections", base, resp.StatusCode)
		}
		// And the slow connections are closed by the server, not kept.
		for i, c := range []net.Conn{conns[0], conns[slow-1]} {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s: slow connection %d still open after a minute", base, i)
			}
		}
	}
}
