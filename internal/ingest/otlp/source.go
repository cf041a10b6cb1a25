package otlp

import (
	"context"
	"net"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc/peer"
)

// batchService returns the service.name of a batch's first resource, and
// whether the batch has more resources. It is read before validation,
// which removes rejected items and the resources they leave empty, so that
// a rejection can name who sent the items; it costs a lookup and no
// allocation.
func batchService[B batch](b B) (name string, more bool) {
	var res pcommon.Resource
	n := 0
	switch b := any(b).(type) {
	case tracesBatch:
		if n = b.td.ResourceSpans().Len(); n > 0 {
			res = b.td.ResourceSpans().At(0).Resource()
		}
	case logsBatch:
		if n = b.ld.ResourceLogs().Len(); n > 0 {
			res = b.ld.ResourceLogs().At(0).Resource()
		}
	case metricsBatch:
		if n = b.md.ResourceMetrics().Len(); n > 0 {
			res = b.md.ResourceMetrics().At(0).Resource()
		}
	}
	if n == 0 {
		return "", false
	}
	if v, ok := res.Attributes().Get("service.name"); ok {
		name = v.AsString()
	}
	return name, n > 1
}

// rejectionSource names the sender of rejected items for
// selfobs.RejectionSources: the batch's service.name and the client's host
// (without the port, which changes with every connection).
func rejectionSource(ctx context.Context, service string, more bool) string {
	src := ""
	if service != "" {
		src = "service.name=" + service
		if more {
			src += " and others"
		}
	}
	host, _ := ctx.Value(clientKey{}).(string)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host = p.Addr.String()
	}
	switch {
	case host == "":
	case src == "":
		src = "client " + clientHost(host)
	default:
		src += " via " + clientHost(host)
	}
	return src
}

// clientKey carries an OTLP/HTTP request's remote address to export.
type clientKey struct{}

func withClient(ctx context.Context, remoteAddr string) context.Context {
	return context.WithValue(ctx, clientKey{}, remoteAddr)
}

// clientHost is the host of a request's remote address.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
