package embedded

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func BenchmarkTypedJSONEncode(b *testing.B) {
	td := storagetest.NewSpanGen(1, time.Unix(1700000000, 0)).Traces(64)
	var spans []pcommon.Map
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				spans = append(spans, sp.Attributes())
			}
		}
	}
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = appendMap(buf[:0], spans[i%len(spans)], nil)
	}
}
