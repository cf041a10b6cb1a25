package promapi

import (
	"encoding/json"
	"net/http"
	"strings"
)

// jsonNotFound answers the plain-text 404s of Prometheus's handler (the
// router's "404 page not found" for a path under /api/v1 that no endpoint
// has, and http.Error's of disabled receivers) in the API's JSON error
// shape, as every other answer of the API is, so that a client that
// mistyped an endpoint reads a reason instead of failing to parse.
func jsonNotFound(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nw := &notFoundWriter{ResponseWriter: w, path: r.URL.Path}
		next.ServeHTTP(nw, r)
		if nw.pending { // a 404 without a body
			nw.answer("")
		}
	})
}

// notFoundWriter holds back a plain-text 404 until its message is written,
// and writes it as JSON.
type notFoundWriter struct {
	http.ResponseWriter
	path              string
	pending, answered bool
}

func (n *notFoundWriter) WriteHeader(code int) {
	if code == http.StatusNotFound && strings.HasPrefix(n.Header().Get("Content-Type"), "text/plain") && !n.answered {
		n.pending = true
		return
	}
	n.ResponseWriter.WriteHeader(code)
}

func (n *notFoundWriter) Write(p []byte) (int, error) {
	switch {
	case n.pending:
		n.answer(string(p))
		return len(p), nil
	case n.answered:
		return len(p), nil // the rest of the plain-text body
	}
	return n.ResponseWriter.Write(p)
}

func (n *notFoundWriter) answer(msg string) {
	n.pending, n.answered = false, true
	msg = strings.TrimSpace(msg)
	if msg == "" || msg == "404 page not found" {
		msg = "no such endpoint: " + n.path
	}
	h := n.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	n.ResponseWriter.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(n.ResponseWriter).Encode(map[string]string{"status": "error", "errorType": "not_found", "error": msg})
}

// Unwrap lets http.ResponseController (flushing the event stream) through.
func (n *notFoundWriter) Unwrap() http.ResponseWriter { return n.ResponseWriter }

// Flush keeps Prometheus's server-sent events working through the wrapper.
func (n *notFoundWriter) Flush() { _ = http.NewResponseController(n.ResponseWriter).Flush() }
