package web

import (
	"net/http"
	"net/url"
)

// CrossOriginProtect refuses cross-site browser requests that change state:
// every request but GET, HEAD and OPTIONS whose Sec-Fetch-Site header says
// it comes from another site, or, from browsers that do not send that
// header, whose Origin (or, lacking an Origin, Referer) names another host
// than the request's Host. Such a request is answered 403 and never reaches
// h, so a page elsewhere cannot make a signed-in browser create silences or
// reload the configuration.
//
// Requests with none of these headers pass: they do not come from a
// browser, since browsers send Origin on every cross-origin request that is
// not a GET or HEAD, and on same-origin ones too. That is what amtool,
// Prometheus's remote_write, OTLP exporters and curl send, and they carry
// no ambient credentials for a third party to borrow.
func CrossOriginProtect(h http.Handler) http.Handler {
	return crossOriginProtect(h, func(*http.Request) bool { return false })
}

// CrossOriginProtect is the package's CrossOriginProtect, except that a page
// of an origin web.cors_origin allows may send requests that only read
// (Grafana in browser mode posts its PromQL queries as forms). Requests
// that change state stay same-origin only, whatever the origin.
func (b *Browsers) CrossOriginProtect(h http.Handler) http.Handler {
	return crossOriginProtect(h, b.TrustedCrossOrigin)
}

func crossOriginProtect(h http.Handler, trusted func(*http.Request) bool) http.Handler {
	p := http.NewCrossOriginProtection()
	deny := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusForbidden, "forbidden",
			"cross-origin request refused: a "+r.Method+" from another site cannot change vigil's state (send it from vigil's own UI, or without Origin/Referer headers from a script)")
	})
	p.SetDenyHandler(deny)
	protected := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSiteReferer(r) {
			deny.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if trusted(r) {
			h.ServeHTTP(w, r)
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// crossSiteReferer covers what http.CrossOriginProtection leaves open: an
// old browser that sends neither Sec-Fetch-Site nor Origin on a form POST
// still sends the page's address as Referer (unless a policy strips it).
func crossSiteReferer(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return false // decided by http.CrossOriginProtection
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return false
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return true
	}
	return u.Host != r.Host
}
