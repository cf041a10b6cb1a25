package promapi

import (
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// minGzipBytes is the smallest answer worth compressing: below it gzip's
// header and trailer and the compressor's work buy next to nothing (the
// answer of a one-host selector is about a kilobyte).
const minGzipBytes = 1400

// gzipWriters keeps gzip writers between requests. Prometheus's handler
// builds a new one for every answer a client accepts gzip for, about a
// megabyte of compressor tables allocated and cleared per request: for a
// small PromQL query that allocation and the collections it causes were
// most of the request's CPU.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// pooledGzip compresses the answers of next with pooled gzip writers, and
// only answers of at least minGzipBytes, for clients whose Accept-Encoding
// names gzip before deflate (the order Prometheus's handler reads it in).
// It hides Accept-Encoding from next, so that Prometheus's own compression
// passes the answer through; a client preferring deflate is left to it.
func pooledGzip(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !prefersGzip(r.Header.Get("Accept-Encoding")) {
			next.ServeHTTP(w, r)
			return
		}
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Accept-Encoding")
		w.Header().Add("Vary", "Accept-Encoding")
		gw := &gzipResponseWriter{ResponseWriter: w}
		defer gw.close()
		next.ServeHTTP(gw, &r2)
	})
}

// prefersGzip tells whether the first of gzip and deflate that
// Accept-Encoding lists is gzip, as Prometheus's handler picks.
func prefersGzip(accept string) bool {
	for accept != "" {
		var enc string
		enc, accept, _ = strings.Cut(accept, ",")
		// A quality parameter ("gzip;q=0.8") does not change the
		// choice: Prometheus's handler ignores it too.
		enc, _, _ = strings.Cut(enc, ";")
		switch strings.TrimSpace(enc) {
		case "gzip":
			return true
		case "deflate":
			return false
		}
	}
	return false
}

// gzipResponseWriter holds back the status and the first bytes of an
// answer until it knows whether the answer reaches minGzipBytes; from
// then on it writes either through a pooled gzip writer or as it is.
type gzipResponseWriter struct {
	http.ResponseWriter
	status  int
	buf     []byte
	decided bool
	gz      *gzip.Writer // nil: the answer goes uncompressed
}

func (g *gzipResponseWriter) WriteHeader(code int) {
	switch {
	case g.decided:
		g.ResponseWriter.WriteHeader(code)
	case g.status == 0:
		g.status = code
	}
}

func (g *gzipResponseWriter) Write(p []byte) (int, error) {
	if !g.decided {
		if len(g.buf)+len(p) < minGzipBytes {
			g.buf = append(g.buf, p...)
			return len(p), nil
		}
		g.decide(true)
		if g.gz != nil && len(g.buf) > 0 {
			if _, err := g.gz.Write(g.buf); err != nil {
				return 0, err
			}
		}
		g.buf = nil
	}
	if g.gz != nil {
		return g.gz.Write(p)
	}
	return g.ResponseWriter.Write(p)
}

// decide sends the header, with Content-Encoding if compress and the
// answer has no encoding of its own (remote read's snappy), and, when not
// compressing, what was held back.
func (g *gzipResponseWriter) decide(compress bool) {
	g.decided = true
	h := g.Header()
	// Compressed or not, a length set for the whole answer would no
	// longer hold once the writer chose; Prometheus sets none.
	if compress && h.Get("Content-Encoding") == "" {
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length")
		g.gz = gzipWriters.Get().(*gzip.Writer)
		g.gz.Reset(g.ResponseWriter)
	}
	if g.status != 0 {
		g.ResponseWriter.WriteHeader(g.status)
	}
	if g.gz == nil && len(g.buf) > 0 {
		_, _ = g.ResponseWriter.Write(g.buf)
		g.buf = nil
	}
}

// Flush sends what is held back uncompressed, since a flushed stream
// (server-sent events) wants its bytes now, then flushes.
func (g *gzipResponseWriter) Flush() {
	if !g.decided {
		g.decide(false)
	}
	if g.gz != nil {
		_ = g.gz.Flush()
	}
	_ = http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController through.
func (g *gzipResponseWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// close ends the answer: a small one is written as it is, a compressed
// one's writer is closed (its trailer written) and returned to the pool.
func (g *gzipResponseWriter) close() {
	if !g.decided {
		g.decide(false)
	}
	if g.gz != nil {
		_ = g.gz.Close()
		g.gz.Reset(nil)
		gzipWriters.Put(g.gz)
		g.gz = nil
	}
}
