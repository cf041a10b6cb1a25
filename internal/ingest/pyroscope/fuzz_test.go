package pyroscope

import (
	"testing"

	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// FuzzParseProfile: whatever the bytes, parsing either fails with an
// error or yields a profile the stores can decompose; it never panics.
func FuzzParseProfile(f *testing.F) {
	good := storagetest.PprofBytes(f, []string{"samples", "cpu"},
		storagetest.ProfileSample{Stack: []string{"a", "b"}, Values: []int64{1, 10}, SpanID: "00000000000000aa"})
	raw, _ := decompress(good, 1<<20)
	f.Add(good)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(manyLocations(10))
	f.Add([]byte{0x1f, 0x8b})
	lim := ProfileLimits{MaxBytes: 1 << 20, MaxLocations: 1000, MaxFunctions: 1000, MaxSamples: 1000}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseProfile(b, lim)
		if err != nil {
			return
		}
		if _, _, err := pprofrows.FromProfile(p); err != nil {
			t.Fatalf("a profile that parsed does not decompose: %v", err)
		}
	})
}
