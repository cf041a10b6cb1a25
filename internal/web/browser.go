package web

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// BrowserOptions says which browser requests vigil's HTTP listeners accept
// beyond those of its own UI: the origins whose pages may read the APIs
// (CORS) and the host names requests may be addressed to (DNS rebinding).
type BrowserOptions struct {
	// CORSOrigin is web.cors_origin: a regular expression, anchored at
	// both ends as Prometheus's --web.cors.origin is, of the origins
	// (scheme://host[:port]) whose pages may read vigil's APIs. Empty
	// matches no origin: only vigil's own UI (same origin) reads them.
	CORSOrigin string
	// AllowedHosts is web.allowed_hosts: the host names, besides loopback
	// names, IP addresses, the machine's name and each listener's own
	// host, that requests may name in their Host header. An entry
	// ".example.com" allows example.com and every name under it; "*"
	// allows any name.
	AllowedHosts []string
	// CheckHost turns the host check on. It matters while authentication
	// is off: then nothing else stops a page whose name was made to
	// resolve to vigil's address from using vigil as its own origin.
	CheckHost bool
	// ReadOnly reports whether a request only reads (a GET, or one of the
	// Prometheus API's POST queries). A page of an origin CORSOrigin
	// matches may send those cross-origin; requests that change state
	// stay refused by the cross-origin protection. Nil: only GET, HEAD and
	// OPTIONS count as reads.
	ReadOnly func(method, path string) bool
}

// Browsers applies BrowserOptions to every listener that serves browsers
// or changes state, so that each API (Prometheus, Alertmanager, Jaeger,
// logs, OTLP/HTTP) answers cross-origin and misaddressed requests alike,
// whatever its own library would have done.
type Browsers struct {
	origin    *regexp.Regexp
	checkHost bool
	hosts     map[string]bool // exact names, lower case
	domains   []string        // ".example.com" entries
	anyHost   bool
	readOnly  func(method, path string) bool
}

// ErrBadOption wraps an invalid web.cors_origin or web.allowed_hosts entry.
var ErrBadOption = errors.New("invalid web option")

// CompileOrigin compiles a web.cors_origin expression, anchored at both
// ends.
func CompileOrigin(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("%w: web.cors_origin %q is not a regular expression: %w", ErrBadOption, expr, err)
	}
	return re, nil
}

// CheckAllowedHost validates one web.allowed_hosts entry: a host name
// without scheme or port, ".domain" for a domain and its subdomains, or "*".
func CheckAllowedHost(entry string) error {
	name := strings.TrimPrefix(entry, ".")
	switch {
	case entry == "*":
		return nil
	case name == "":
		return fmt.Errorf("%w: web.allowed_hosts entry %q is empty", ErrBadOption, entry)
	case strings.Contains(entry, "://") || strings.ContainsAny(entry, "/ :@"):
		return fmt.Errorf("%w: web.allowed_hosts entry %q: want a host name only (vigil.example.com or .example.com), no scheme, port or path", ErrBadOption, entry)
	case strings.Contains(name, "*"):
		return fmt.Errorf("%w: web.allowed_hosts entry %q: write .example.com for a domain and its subdomains, or * alone for any name", ErrBadOption, entry)
	}
	return nil
}

// NewBrowsers validates o.
func NewBrowsers(o BrowserOptions) (*Browsers, error) {
	re, err := CompileOrigin(o.CORSOrigin)
	if err != nil {
		return nil, err
	}
	b := &Browsers{origin: re, checkHost: o.CheckHost, hosts: map[string]bool{"localhost": true}, readOnly: o.ReadOnly}
	if b.readOnly == nil {
		b.readOnly = func(method, _ string) bool { return safeMethod(method) }
	}
	// The machine's own name: reaching vigil as http://myhost:7070 from
	// the network is ordinary, and no page elsewhere can make a browser
	// put that name in Host.
	if h, err := os.Hostname(); err == nil && h != "" {
		b.hosts[normalizeHost(h)] = true
		if short, _, ok := strings.Cut(h, "."); ok {
			b.hosts[normalizeHost(short)] = true
		}
	}
	for _, e := range o.AllowedHosts {
		if err := CheckAllowedHost(e); err != nil {
			return nil, err
		}
		switch {
		case e == "*":
			b.anyHost = true
		case strings.HasPrefix(e, "."):
			b.domains = append(b.domains, normalizeHost(e))
		default:
			b.hosts[normalizeHost(e)] = true
		}
	}
	return b, nil
}

// hostOnly is host without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

func normalizeHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// AllowedOrigin reports whether pages of origin may read vigil's APIs.
func (b *Browsers) AllowedOrigin(origin string) bool {
	return origin != "" && b.origin.MatchString(origin)
}

// AllowedHost reports whether a request to listenAddr may name host (a
// Host header, with or without port).
func (b *Browsers) AllowedHost(listenAddr, host string) bool {
	if !b.checkHost || b.anyHost || host == "" {
		return true // no Host at all is HTTP/1.0, not a browser
	}
	host = normalizeHost(strings.TrimSuffix(strings.TrimPrefix(hostOnly(host), "["), "]"))
	// An address needs no name to resolve, so no name can be rebound to it.
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	// Browsers resolve *.localhost to loopback themselves.
	if b.hosts[host] || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if lh, _, err := net.SplitHostPort(listenAddr); err == nil && lh != "" && normalizeHost(lh) == host {
		return true
	}
	for _, d := range b.domains {
		if host == d[1:] || strings.HasSuffix(host, d) {
			return true
		}
	}
	return false
}

// Wrap puts h, served on listenAddr, behind the host check and the CORS
// policy. Both come before authentication: a CORS preflight carries no
// credentials, and a misaddressed request is refused whatever it carries.
func (b *Browsers) Wrap(listenAddr string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.AllowedHost(listenAddr, r.Host) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			writeJSONError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(
				"host %q is not allowed: vigil answers requests addressed to localhost, an IP address, this machine's name, its listen address or a name in web.allowed_hosts; if %q is really vigil's name, add it to web.allowed_hosts in vigil.yaml (this check protects vigil without authentication from DNS rebinding)", r.Host, hostOnly(r.Host)))
			return
		}
		b.cors(w, r, h)
	})
}

// corsHeaders are what the libraries behind vigil's APIs may set on their
// own (Alertmanager allows every origin, Prometheus its configured one);
// they are replaced by the one policy.
var corsHeaders = []string{
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
	"Access-Control-Allow-Private-Network",
}

func (b *Browsers) cors(w http.ResponseWriter, r *http.Request, h http.Handler) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Add("Vary", "Origin")
	allowed := b.AllowedOrigin(origin)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		b.preflight(w, r, origin, allowed)
		return
	}
	cw := &corsWriter{ResponseWriter: w, origin: origin, allowed: allowed}
	h.ServeHTTP(cw, r)
	cw.fix() // a handler that wrote nothing: net/http sends the header now
}

// preflight answers a CORS preflight itself, for every path alike: the
// handlers behind never see one (they would need credentials, which a
// preflight does not carry).
func (b *Browsers) preflight(w http.ResponseWriter, r *http.Request, origin string, allowed bool) {
	w.Header().Add("Vary", "Access-Control-Request-Method")
	w.Header().Add("Vary", "Access-Control-Request-Headers")
	method := r.Header.Get("Access-Control-Request-Method")
	if !allowed || !b.readOnly(method, r.URL.Path) && !b.writableCrossOrigin(r) {
		msg := "cross-origin requests from " + origin + " are not allowed: add a regular expression matching it to web.cors_origin in vigil.yaml"
		if allowed {
			msg = "a " + method + " to " + r.URL.Path + " changes vigil's state and is not served to other origins; only reads are"
		}
		writeJSONError(w, http.StatusForbidden, "forbidden", msg)
		return
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
	// The origin is trusted by configuration; the headers it asks for
	// (Authorization, Content-Type, Grafana's X-Grafana-*) are its own.
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		hdr.Set("Access-Control-Allow-Headers", req)
	}
	// Chrome asks before a public page reaches a private or loopback
	// address (Private Network Access); an allowed origin is let through.
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		hdr.Set("Access-Control-Allow-Private-Network", "true")
	}
	hdr.Set("Access-Control-Max-Age", strconv.Itoa(600))
	w.WriteHeader(http.StatusNoContent)
}

// writableCrossOrigin: OTLP/HTTP from a web page (the OpenTelemetry JS
// exporters) is a cross-origin POST by nature. Those paths are only
// served on the OTLP listener, which has no other state to change.
func (b *Browsers) writableCrossOrigin(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/traces", "/v1/logs", "/v1/metrics":
		return r.Header.Get("Access-Control-Request-Method") == http.MethodPost
	}
	return false
}

// TrustedCrossOrigin reports whether r, a cross-origin browser request,
// may pass the cross-origin protection: it comes from an allowed origin
// and only reads.
func (b *Browsers) TrustedCrossOrigin(r *http.Request) bool {
	return b.AllowedOrigin(r.Header.Get("Origin")) && b.readOnly(r.Method, r.URL.Path)
}

// corsWriter replaces whatever CORS headers the handler set by the policy's,
// just before the header is sent.
type corsWriter struct {
	http.ResponseWriter
	origin      string
	allowed     bool
	wroteHeader bool
}

func (c *corsWriter) fix() {
	if c.wroteHeader {
		return
	}
	c.wroteHeader = true
	hdr := c.ResponseWriter.Header()
	for _, k := range corsHeaders {
		hdr.Del(k)
	}
	if c.allowed {
		hdr.Set("Access-Control-Allow-Origin", c.origin)
		hdr.Set("Access-Control-Expose-Headers", "Date, Retry-After")
	}
	// Prometheus's handler adds its own "Vary: Origin" to the policy's.
	if vary := hdr.Values("Vary"); len(vary) > 1 {
		var seen []string
		for _, v := range vary {
			if !slices.Contains(seen, v) {
				seen = append(seen, v)
			}
		}
		hdr["Vary"] = seen
	}
}

func (c *corsWriter) WriteHeader(code int) {
	c.fix()
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(p []byte) (int, error) {
	c.fix()
	return c.ResponseWriter.Write(p)
}

// Flush keeps streaming handlers (Prometheus's server-sent events) working.
func (c *corsWriter) Flush() {
	c.fix()
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
