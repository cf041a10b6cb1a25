// Package ui serves vigil's web UI: the single-page app built from web/ by
// `make ui` (Vite writes it to dist/) and embedded into the binary.
//
// A binary built without the UI (dist/ holds only .keep) still works: every
// page answers a short note saying how to build it.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// ContentSecurityPolicy allows only vigil's own scripts, styles and images
// (and data: images, which charts may use). The built app has no inline
// script or style, so nothing needs 'unsafe-inline'.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// notBuilt is served in place of index.html when the binary was built
// without the UI.
const notBuilt = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vigil</title></head>
<body><h1>vigil</h1><p>UI not built: run make ui (or make build) and rebuild vigil.</p>
<p>The APIs answer without it: <a href="/api/v1/query?query=up">/api/v1/query</a>, /api/traces/{id}, <a href="/api/logs">/api/logs</a>, <a href="/metrics">/metrics</a>.</p>
</body></html>
`

// ExploreLink is the path, with its query, of the UI page that runs the
// PromQL expression expr: the metrics explorer, which web/src/App.tsx
// routes at /explore and which reads the expression from ?query=. Links
// vigil hands out to show an expression (alerts' generator URLs) are built
// with it, so that they open vigil's UI rather than a Prometheus's.
func ExploreLink(expr string) string {
	return "/explore?" + url.Values{"query": {expr}}.Encode()
}

// Handler serves the UI embedded at build time.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil { // only if the embed directive changes
		panic(err)
	}
	return New(sub)
}

// file is one asset, read and hashed once.
type file struct {
	data  []byte
	gz    []byte // gzip-compressed data when that is smaller, else nil
	etag  string
	ctype string
}

// handler serves the files of a Vite build. Paths that name a file get it;
// hashed assets under /assets/ are cached for a year, everything else is
// revalidated. Any other path is a client-side route and gets index.html.
type handler struct {
	files map[string]*file // by URL path ("/assets/index-abc.js")
	index *file
}

// New serves the single-page app in files (the contents of Vite's outDir).
// It reads every file once; files is not consulted again.
func New(files fs.FS) http.Handler {
	h := &handler{files: map[string]*file{}}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return nil
		}
		h.files["/"+p] = newFile(p, data)
		return nil
	})
	h.index = h.files["/index.html"]
	if h.index == nil {
		h.index = newFile("index.html", []byte(notBuilt))
	}
	return h
}

func newFile(name string, data []byte) *file {
	sum := sha256.Sum256(data)
	f := &file{data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	f.ctype = mime.TypeByExtension(path.Ext(name))
	if f.ctype == "" {
		f.ctype = http.DetectContentType(data)
	}
	if compressible(f.ctype) && len(data) > 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(data)
		_ = zw.Close()
		if buf.Len() < len(data) {
			f.gz = buf.Bytes()
		}
	}
	return f
}

func compressible(ctype string) bool {
	for _, p := range []string{"text/", "application/javascript", "application/json", "image/svg+xml"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	f, ok := h.files[p]
	switch {
	case ok && p != "/index.html" && strings.HasPrefix(p, "/assets/"):
		// Vite names these after their content hash: they never change.
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	case ok && p != "/index.html":
		hdr.Set("Cache-Control", "no-cache")
	case strings.HasPrefix(p, "/assets/"):
		// A missing chunk (say, from an older build) must fail as a 404,
		// not load index.html as JavaScript.
		hdr.Set("Cache-Control", "no-cache")
		http.Error(w, "no such asset: "+p, http.StatusNotFound)
		return
	default:
		// index.html itself and every client-side route.
		f = h.index
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("ETag", f.etag)
	data := f.data
	if f.gz != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			hdr.Set("Content-Encoding", "gzip")
			data = f.gz
		}
	}
	// ServeContent answers conditional requests (If-None-Match) and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			name, q, _ := strings.Cut(strings.TrimSpace(enc), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}
