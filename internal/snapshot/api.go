package snapshot

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// API paths.
const (
	// Path lists bundles (GET) and takes one (POST, admin role under
	// authentication, as other writes).
	Path = "/api/v1/snapshots"
	// BundlePath is one bundle's tar.gz (GET).
	BundlePath = Path + "/{id}"
)

// Routes lists the patterns Handler serves; mount each on the web
// listener.
var Routes = []string{"GET " + Path, "POST " + Path, "GET " + BundlePath}

// Handler serves Routes over c.
func (c *Capturer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, c.serveCapture)
	mux.HandleFunc("GET "+Path, c.serveList)
	mux.HandleFunc("GET "+BundlePath, c.serveBundle)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (c *Capturer) serveCapture(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"service\": NAME, \"cpu_seconds\": N}: "+err.Error())
		return
	}
	m, err := c.Capture(r.Context(), req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, m)
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNoInstances):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusTooManyRequests, err.Error())
	case r.Context().Err() != nil:
		// The caller went away; nobody to answer.
	default:
		c.opts.Logger.Error("snapshot failed", "service", req.Service, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (c *Capturer) serveList(w http.ResponseWriter, _ *http.Request) {
	ms, err := c.store.list()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshots": ms})
}

func (c *Capturer) serveBundle(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := c.store.path(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "no snapshot "+id)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		// Pruned since it was found.
		writeError(w, http.StatusNotFound, "no snapshot "+id)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filepath.Base(p)+`"`)
	http.ServeContent(w, r, "", modTime(f), f)
}
