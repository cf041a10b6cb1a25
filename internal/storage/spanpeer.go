package storage

import (
	"cmp"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SpanPeer names the other side of a call from a span's own attributes,
// as SpanShape.Peer describes. Backends that read the attributes back
// into a map (the in-memory and ClickHouse stores) share it, so that the
// doctor sees the same peers whichever store holds the spans.
func SpanPeer(kind ptrace.SpanKind, attrs pcommon.Map) string {
	switch kind {
	case ptrace.SpanKindClient, ptrace.SpanKindProducer:
		return cmp.Or(attrText(attrs, "peer.service"),
			hostPort(attrs, "server.address", "server.port"),
			hostPort(attrs, "net.peer.name", "net.peer.port"))
	case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
		return cmp.Or(hostPort(attrs, "server.address", "server.port"),
			hostPort(attrs, "net.host.name", "net.host.port"))
	}
	return ""
}

// hostPort is "host:port", "host" without a port, or "" without a host.
func hostPort(attrs pcommon.Map, hostKey, portKey string) string {
	host := attrText(attrs, hostKey)
	if host == "" {
		return ""
	}
	if port := attrText(attrs, portKey); port != "" {
		return host + ":" + port
	}
	return host
}

func attrText(attrs pcommon.Map, k string) string {
	if v, ok := attrs.Get(k); ok {
		return v.AsString()
	}
	return ""
}
