package embedded

import (
	"math"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

// TestCountLogsAttributeValues pins that CountLogs reports each attribute
// value byte for byte as attrenc stores it, whatever DuckDB's json_extract
// makes of it, and finds keys holding the characters a JSON path treats
// specially.
func TestCountLogsAttributeValues(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	base := time.Now().UTC().Truncate(time.Hour)
	values := []func(v pcommon.Value){
		func(v pcommon.Value) { v.SetStr("text") },
		func(v pcommon.Value) { v.SetStr("") },
		func(v pcommon.Value) { v.SetStr("quote\" back\\ nl\n tab\t ctl\x01 ünï €/") },
		func(v pcommon.Value) { v.SetStr("\x00starts with NUL") },
		func(v pcommon.Value) { v.SetStr("bad utf8 \xff") },
		func(v pcommon.Value) { v.SetInt(42) },
		func(v pcommon.Value) { v.SetInt(-1 << 63) },
		func(v pcommon.Value) { v.SetInt(1<<63 - 1) },
		func(v pcommon.Value) { v.SetDouble(2) },
		func(v pcommon.Value) { v.SetDouble(0.1) },
		func(v pcommon.Value) { v.SetDouble(1e-300) },
		func(v pcommon.Value) { v.SetDouble(-1.5e300) },
		func(v pcommon.Value) { v.SetDouble(1e21) },
		func(v pcommon.Value) { v.SetDouble(math.NaN()) },
		func(v pcommon.Value) { v.SetDouble(math.Inf(1)) },
		func(v pcommon.Value) { v.SetBool(true) },
		func(v pcommon.Value) { v.SetBool(false) },
		func(v pcommon.Value) {},
		func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte{0, 1, 255}) },
		func(v pcommon.Value) {
			sl := v.SetEmptySlice()
			sl.AppendEmpty().SetInt(1)
			sl.AppendEmpty().SetDouble(1)
			sl.AppendEmpty().SetStr("x")
		},
		func(v pcommon.Value) {
			m := v.SetEmptyMap()
			m.PutStr("z", "last first")
			m.PutInt("a", 1)
		},
	}
	keys := []string{"v", "a.b", `q"uote`, "sl/ash", "ti~lde", "", "k'ey"}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "svc")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	want := map[string]int{}
	for i, set := range values {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i+1) * time.Second)))
		lr.Body().SetStr("line")
		for _, k := range keys {
			set(lr.Attributes().PutEmpty(k))
		}
		v := pcommon.NewValueEmpty()
		set(v)
		want[string(attrenc.AppendValue(nil, v))]++
	}
	// A record without attributes (stored as "") has none of the keys.
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Minute)))
	want[""]++
	if err := s.WriteLogs(t.Context(), ld); err != nil {
		t.Fatal(err)
	}
	streams, err := s.LogStreams(t.Context(), storage.LogQuery{})
	if err != nil || len(streams) != 1 {
		t.Fatalf("LogStreams = %v, %v", streams, err)
	}
	got, err := s.CountLogs(t.Context(), storage.LogCountQuery{
		Streams: []string{streams[0].Key},
		Origin:  base, Step: time.Hour, Start: base, End: base.Add(time.Hour),
		Attributes: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	gotValues := map[string]int{}
	for _, c := range got {
		for _, a := range c.Attributes[1:] {
			if a != c.Attributes[0] {
				t.Errorf("keys hold the same value, got %q", c.Attributes)
			}
		}
		gotValues[c.Attributes[0]] += int(c.Entries)
	}
	for v, n := range want {
		if gotValues[v] != n {
			t.Errorf("value %q: %d records, want %d", v, gotValues[v], n)
		}
	}
	for v, n := range gotValues {
		if _, ok := want[v]; !ok {
			t.Errorf("value %q (%d records) was never written", v, n)
		}
	}
	if t.Failed() {
		t.Logf("got %q", slices.Sorted(func(yield func(string) bool) {
			for v := range gotValues {
				if !yield(v) {
					return
				}
			}
		}))
	}
}
