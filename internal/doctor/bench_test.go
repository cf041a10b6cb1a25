package doctor

import (
	"testing"
	"time"
)

// BenchmarkTraceChecks times the two checks that analyse every span of
// their window, on the simulated shop at a rate that fills the default
// span limit (the store's read is measured apart, in the embedded
// backend's BenchmarkDiagnosis).
func BenchmarkTraceChecks(b *testing.B) {
	spans := shopSpans(shopOptions{rps: 120, dropContext: map[string]bool{"gateway>catalog": true}})
	b.Logf("%d spans in the window", len(spans))
	src := &fakeDiagnosis{spans: spans}
	now := func() time.Time { return testNow }
	b.Run("propagation", func(b *testing.B) {
		for b.Loop() {
			if _, err := (PropagationCheck{Spans: src, Now: now}).Run(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("timing", func(b *testing.B) {
		for b.Loop() {
			if _, err := (TimingCheck{Spans: src, Now: now}).Run(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
