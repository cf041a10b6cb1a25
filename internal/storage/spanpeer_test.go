package storage

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestSpanPeer(t *testing.T) {
	tests := []struct {
		name  string
		kind  ptrace.SpanKind
		attrs map[string]any
		want  string
	}{
		{"client peer.service first", ptrace.SpanKindClient, map[string]any{"peer.service": "payments", "server.address": "10.0.0.1"}, "payments"},
		{"client server address and port", ptrace.SpanKindClient, map[string]any{"server.address": "db", "server.port": int64(5432)}, "db:5432"},
		{"producer legacy peer name", ptrace.SpanKindProducer, map[string]any{"net.peer.name": "kafka", "net.peer.port": "9092"}, "kafka:9092"},
		{"empty peer.service counts as unset", ptrace.SpanKindClient, map[string]any{"peer.service": "", "net.peer.name": "cache"}, "cache"},
		{"port without host ignored", ptrace.SpanKindClient, map[string]any{"server.port": int64(80)}, ""},
		{"server own address", ptrace.SpanKindServer, map[string]any{"peer.service": "x", "server.address": "api"}, "api"},
		{"consumer legacy host name", ptrace.SpanKindConsumer, map[string]any{"net.host.name": "worker", "net.host.port": int64(8080)}, "worker:8080"},
		{"internal spans have no peer", ptrace.SpanKindInternal, map[string]any{"peer.service": "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := pcommon.NewMap()
			if err := m.FromRaw(tt.attrs); err != nil {
				t.Fatal(err)
			}
			if got := SpanPeer(tt.kind, m); got != tt.want {
				t.Errorf("SpanPeer = %q, want %q", got, tt.want)
			}
		})
	}
}
