package auth

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strconv"
)

// Wrap returns next behind authentication: each request needs the role
// ClassifyRequest gives it. Missing or wrong credentials get 401
// with WWW-Authenticate (so browsers prompt for basic auth), valid
// credentials without the role get 403. A nil Authenticator means auth is
// off and next is returned as is.
func (a *Authenticator) Wrap(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := ClassifyRequest(r)
		if need == Open {
			next.ServeHTTP(w, r)
			return
		}
		authz := r.Header.Get("Authorization")
		if t := r.Header.Get("X-Consul-Token"); authz == "" && t != "" && RegistryPath(r.URL.Path) {
			// Consul's clients send their token in their own header.
			authz = "Bearer " + t
		}
		roles, principal, err := a.identify(remoteAddr(r), authz)
		var limited *LimitError
		if errors.As(err, &limited) {
			// No password was checked: answering at once costs nothing.
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limited.RetryAfter.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "too_many_requests", limited.Error())
			return
		}
		if err != nil {
			w.Header().Add("WWW-Authenticate", `Basic realm="vigil", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="vigil"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required: send basic auth or a bearer token")
			return
		}
		if !Allowed(roles, need) {
			writeError(w, http.StatusForbidden, "forbidden", "this credential lacks "+Describe(need)+" needed for "+r.Method+" "+r.URL.Path)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal)))
	})
}

type principalKey struct{}

// Principal names the credential a request authenticated with (a user's
// name, or "token:" and a bearer token's name), from the context Wrap
// gives the handlers behind it; empty when authentication is off or the
// route is open. Audit records take it from here rather than from what
// the caller claims.
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// remoteAddr is the client's IP address; the zero Addr if unknown. It is
// the connection's peer: behind a reverse proxy every client shares the
// proxy's budget of failed logins (headers like X-Forwarded-For are not
// trusted, since any client can send them).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// writeError answers in the Prometheus API's error shape, whatever API was
// asked: authentication runs before any API is reached (the Jaeger and log
// APIs have shapes of their own), and most clients of vigil's API paths
// (Grafana, promtool, the UI) read Prometheus's.
func writeError(w http.ResponseWriter, code int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType, "error": msg})
}
