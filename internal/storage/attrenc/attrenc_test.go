package attrenc

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestTypedJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		put  func(m pcommon.Map)
		want string // exact encoding; "" skips the check
	}{
		{"empty map", func(pcommon.Map) {}, ""},
		{"string", func(m pcommon.Map) { m.PutStr("k", "v") }, `{"k":"v"}`},
		{"empty string", func(m pcommon.Map) { m.PutStr("k", "") }, `{"k":""}`},
		{"escapes", func(m pcommon.Map) { m.PutStr("k", "a\"b\\c\nd\te\rf\x01g\x7f") }, `{"k":"a\"b\\c\nd\te\rf\u0001g` + "\x7f" + `"}`},
		{"unicode kept raw", func(m pcommon.Map) { m.PutStr("ключ", "ünïcødé ✓ <&>") }, `{"ключ":"ünïcødé ✓ <&>"}`},
		{"int", func(m pcommon.Map) { m.PutInt("k", -42) }, `{"k":-42}`},
		{"int extremes", func(m pcommon.Map) { m.PutInt("a", math.MaxInt64); m.PutInt("b", math.MinInt64) }, `{"a":9223372036854775807,"b":-9223372036854775808}`},
		{"whole double stays double", func(m pcommon.Map) { m.PutDouble("k", 2) }, `{"k":2.0}`},
		{"double", func(m pcommon.Map) { m.PutDouble("k", 3.25) }, `{"k":3.25}`},
		{"tiny and huge doubles", func(m pcommon.Map) {
			m.PutDouble("a", 1e-300)
			m.PutDouble("b", 1e300)
			m.PutDouble("c", math.Copysign(0, -1))
		}, ""},
		{"non-finite doubles", func(m pcommon.Map) {
			m.PutDouble("nan", math.NaN())
			m.PutDouble("inf", math.Inf(1))
			m.PutDouble("-inf", math.Inf(-1))
		}, `{"nan":"\u0000dNaN","inf":"\u0000d+Inf","-inf":"\u0000d-Inf"}`},
		{"bools", func(m pcommon.Map) { m.PutBool("t", true); m.PutBool("f", false) }, `{"t":true,"f":false}`},
		{"bytes", func(m pcommon.Map) { m.PutEmptyBytes("k").FromRaw([]byte{0, 1, 0xff}) }, `{"k":"\u0000bAAH/"}`},
		{"empty bytes", func(m pcommon.Map) { m.PutEmptyBytes("k") }, `{"k":"\u0000b"}`},
		{"empty value", func(m pcommon.Map) { m.PutEmpty("k") }, `{"k":null}`},
		{"string starting with NUL", func(m pcommon.Map) { m.PutStr("k", "\x00bnot bytes") }, `{"k":"\u0000sbnot bytes"}`},
		{"lone NUL", func(m pcommon.Map) { m.PutStr("k", "\x00") }, ""},
		{"invalid UTF-8 kept byte for byte", func(m pcommon.Map) { m.PutStr("k", "ok\xff\xfe") }, ""},
		{"invalid UTF-8 key", func(m pcommon.Map) { m.PutStr("k\xff", "v") }, ""},
		{"NUL-tagged key", func(m pcommon.Map) { m.PutStr("\x00bkey", "v") }, ""},
		{"array of everything", func(m pcommon.Map) {
			s := m.PutEmptySlice("k")
			s.AppendEmpty().SetStr("a")
			s.AppendEmpty().SetInt(1)
			s.AppendEmpty().SetDouble(1)
			s.AppendEmpty().SetBool(false)
			s.AppendEmpty().SetEmptyBytes().FromRaw([]byte("x"))
			s.AppendEmpty()
			s.AppendEmpty().SetEmptySlice().AppendEmpty().SetInt(2)
			s.AppendEmpty().SetEmptyMap().PutStr("in", "array")
		}, `{"k":["a",1,1.0,false,"\u0000beA==",null,[2],{"in":"array"}]}`},
		{"empty array and map", func(m pcommon.Map) { m.PutEmptySlice("a"); m.PutEmptyMap("m") }, `{"a":[],"m":{}}`},
		{"nested maps keep order", func(m pcommon.Map) {
			n := m.PutEmptyMap("outer")
			n.PutStr("z", "1")
			n.PutStr("a", "2")
			n.PutEmptyMap("deep").PutDouble("x", 0.5)
		}, `{"outer":{"z":"1","a":"2","deep":{"x":0.5}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := pcommon.NewMap()
			tt.put(in)
			enc := AppendMap(nil, in, nil)
			if tt.want != "" && string(enc) != tt.want {
				t.Errorf("encoded %s, want %s", enc, tt.want)
			}
			if len(enc) > 0 && !json.Valid(enc) {
				t.Errorf("encoding is not valid JSON: %q", enc)
			}
			out := pcommon.NewMap()
			if err := DecodeMap(string(enc), out); err != nil {
				t.Fatalf("decode %q: %v", enc, err)
			}
			assertSameMap(t, in, out)
		})
	}
}

// assertSameMap compares key order, types and values; NaN equals NaN.
func assertSameMap(t *testing.T, want, got pcommon.Map) {
	t.Helper()
	var wk, gk []string
	for k := range want.All() {
		wk = append(wk, k)
	}
	for k := range got.All() {
		gk = append(gk, k)
	}
	if !slices.Equal(wk, gk) {
		t.Fatalf("keys %q, want %q", gk, wk)
	}
	for k, wv := range want.All() {
		gv, _ := got.Get(k)
		if !sameValue(wv, gv) {
			t.Errorf("%q: got %s %q, want %s %q", k, gv.Type(), gv.AsString(), wv.Type(), wv.AsString())
		}
	}
}

func sameValue(a, b pcommon.Value) bool {
	if a.Type() == pcommon.ValueTypeDouble && b.Type() == pcommon.ValueTypeDouble {
		return math.Float64bits(a.Double()) == math.Float64bits(b.Double())
	}
	return a.Equal(b)
}

func TestTypedJSONSkip(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("keep", "1")
	m.PutStr("drop", "2")
	got := AppendMap(nil, m, func(k string, _ pcommon.Value) bool { return k == "drop" })
	if string(got) != `{"keep":"1"}` {
		t.Errorf("got %s", got)
	}
	if got := AppendMap(nil, m, func(string, pcommon.Value) bool { return true }); len(got) != 0 {
		t.Errorf("all skipped: got %q, want empty", got)
	}
}

func TestTypedJSONDecodeErrors(t *testing.T) {
	for _, in := range []string{
		`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":tru}`, `[1]`, `{"a":"\u00zz"}`,
		`{"a":"unterminated}`, `{"a":1} x`, `{"a":"\u0000b!!!"}`, `{"a":"\u0000dHuge"}`, `{"a":--1}`,
	} {
		if err := DecodeMap(in, pcommon.NewMap()); !errors.Is(err, ErrBadJSON) {
			t.Errorf("DecodeMap(%q) = %v, want ErrBadJSON", in, err)
		}
	}
}

func TestTypedJSONAcceptsForeignJSON(t *testing.T) {
	// Written by hand or by DuckDB's json functions: whitespace, escaped
	// slash, surrogate pairs.
	m := pcommon.NewMap()
	if err := DecodeMap(` { "a" : [ 1 , 2.5e0 ] , "b" : "x\/y \ud83d\ude00" } `, m); err != nil {
		t.Fatal(err)
	}
	want := pcommon.NewMap()
	s := want.PutEmptySlice("a")
	s.AppendEmpty().SetInt(1)
	s.AppendEmpty().SetDouble(2.5)
	want.PutStr("b", "x/y 😀")
	assertSameMap(t, want, m)
}
