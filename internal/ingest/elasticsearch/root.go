package elasticsearch

import (
	"mime"
	"net/http"
	"path"
	"strings"
)

// RootRequest reports whether a request to a listener that serves this
// API at its root beside a web UI is meant for the API. Agents are
// configured with a bare host and port, so they call "/", "/_bulk",
// "/_license" and the like there. The paths it claims are the root, every
// path whose first segment starts with "_" (no index or UI page can), and
// "/{index}/_bulk", "/{index}/_doc[/{id}]" and "/{index}/_create/{id}",
// the per-index calls agents ship documents through. The other per-index
// calls (creating an index, its mapping) are served under PathPrefix
// only: "/{name}" alone is also the shape of the UI's pages.
//
// A GET or HEAD whose Accept header asks for text/html is a browser's: it
// is never claimed, so that a browser at "/" gets the UI, while an agent
// or a client library (which accept JSON or anything) gets the version
// answer. The same rule must decide routing and access (internal/auth),
// so it depends on nothing but the method, the path and the headers.
func RootRequest(method, p string, header http.Header) bool {
	if (method == http.MethodGet || method == http.MethodHead) && acceptsHTML(header) {
		return false
	}
	p = path.Clean("/" + p)
	if p == "/" {
		return true
	}
	seg := strings.Split(p[1:], "/")
	if strings.HasPrefix(seg[0], "_") {
		return true
	}
	switch {
	case len(seg) == 2:
		return seg[1] == "_bulk" || seg[1] == "_doc"
	case len(seg) == 3:
		return seg[1] == "_doc" || seg[1] == "_create"
	}
	return false
}

// acceptsHTML reports whether the Accept header lists text/html (with a
// non-zero quality), as every browser's navigation does.
func acceptsHTML(header http.Header) bool {
	for _, v := range header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || mt != "text/html" {
				continue
			}
			if q := params["q"]; q != "" && strings.Trim(q, "0.") == "" {
				continue
			}
			return true
		}
	}
	return false
}
