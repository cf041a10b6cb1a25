package profiletype

import (
	"strings"
	"testing"
)

func TestKindSuffix(t *testing.T) {
	for _, tc := range []struct{ name, base, kind string }{
		{"app.cpu", "app", "cpu"},
		{"shop.payments.alloc_space", "shop.payments", "memory"},
		{"app.mutex_duration", "app", "mutex"},
		{"app.block", "app", "block"},
		{"app.goroutines", "app", "goroutine"},
		{"shop.payments", "shop.payments", ""},
		{".cpu", ".cpu", ""},
		{"app", "app", ""},
	} {
		if base, kind := KindSuffix(tc.name); base != tc.base || kind != tc.kind {
			t.Errorf("KindSuffix(%q) = %q, %q; want %q, %q", tc.name, base, kind, tc.base, tc.kind)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		types []string
		want  string
		err   string
	}{
		{"", []string{"samples", "cpu"}, "cpu", ""},
		{"", []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}, "memory", ""},
		{"", []string{"goroutine"}, "goroutine", ""},
		{"", []string{"contentions", "delay"}, "", "mutexes or blocking"},
		{"mutex", []string{"contentions", "delay"}, "mutex", ""},
		{"block", []string{"contentions", "delay"}, "block", ""},
		{"cpu", []string{"inuse_space"}, "", "not those of a cpu profile"},
		{"", []string{"widgets"}, "", "not those of a Go"},
	} {
		got, err := Check(tc.kind, tc.types)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Check(%q, %v) = %q, %v; want %q, %q", tc.kind, tc.types, got, err, tc.want, tc.err)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		typ, err := Lookup(name)
		if err != nil || typ.Name != name || typ.Kind == "" || typ.Unit == "" {
			t.Errorf("Lookup(%q) = %+v, %v", name, typ, err)
		}
	}
	if g, _ := Lookup("goroutine"); g.Index([]string{"goroutines"}) != 0 {
		t.Error("goroutine does not accept the sample type goroutines")
	}
	if _, err := Lookup("heap"); err == nil || !strings.Contains(err.Error(), "alloc_space") {
		t.Errorf("Lookup(heap): %v, want the list of types", err)
	}
}
