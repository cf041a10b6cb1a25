package metricmeta

import (
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func md(typ model.MetricType, help string) metadata.Metadata {
	return metadata.Metadata{Type: typ, Help: help}
}

func TestStoreSet(t *testing.T) {
	type set struct {
		family string
		md     metadata.Metadata
	}
	tests := []struct {
		name string
		opts Options
		sets []set
		want map[string][]metadata.Metadata
	}{
		{"one", Options{}, []set{{"a_total", md("counter", "A.")}},
			map[string][]metadata.Metadata{"a_total": {md("counter", "A.")}}},
		{"repeats kept once", Options{}, []set{{"a", md("gauge", "A.")}, {"a", md("gauge", "A.")}},
			map[string][]metadata.Metadata{"a": {md("gauge", "A.")}}},
		{"variants kept", Options{}, []set{{"a", md("gauge", "A.")}, {"a", md("gauge", "B.")}},
			map[string][]metadata.Metadata{"a": {md("gauge", "A."), md("gauge", "B.")}}},
		{"oldest variant goes", Options{MaxPerFamily: 2},
			[]set{{"a", md("gauge", "1")}, {"a", md("gauge", "2")}, {"a", md("gauge", "3")}},
			map[string][]metadata.Metadata{"a": {md("gauge", "2"), md("gauge", "3")}}},
		{"new families refused when full", Options{MaxFamilies: 1},
			[]set{{"a", md("gauge", "A.")}, {"b", md("gauge", "B.")}, {"a", md("gauge", "A2.")}},
			map[string][]metadata.Metadata{"a": {md("gauge", "A."), md("gauge", "A2.")}}},
		{"empty ignored", Options{}, []set{{"a", metadata.Metadata{}}, {"", md("gauge", "x")}},
			map[string][]metadata.Metadata{}},
		{"long name ignored", Options{}, []set{{strings.Repeat("n", MaxNameBytes+1), md("gauge", "x")}},
			map[string][]metadata.Metadata{}},
		{"long help truncated on a rune", Options{}, []set{{"a", md("gauge", strings.Repeat("é", MaxHelpBytes))}},
			map[string][]metadata.Metadata{"a": {md("gauge", strings.Repeat("é", MaxHelpBytes/2))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			for _, x := range tt.sets {
				s.Set(x.family, x.md)
			}
			if got := s.All(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("All() = %v, want %v", got, tt.want)
			}
		})
	}
}

// Set copies what it keeps: appenders pass strings that alias buffers
// they reuse.
func TestStoreCopies(t *testing.T) {
	s := New(Options{})
	name, help := []byte("reused_total"), []byte("Help.")
	s.Set(string(name), metadata.Metadata{Type: "counter", Help: string(help)})
	s.Set(strings.Clone(string(name)), metadata.Metadata{Type: "counter", Help: string(help)})
	if got := s.Get("reused_total"); len(got) != 1 || got[0].Help != "Help." {
		t.Fatalf("Get = %v", got)
	}
}

// Recording keeps the metadata appenders pass with their samples, for
// committed transactions only, over a real TSDB.
func TestRecording(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
	s := New(Options{})
	rec := Recording(db, s)

	appendOne := func(family string, m metadata.Metadata, commit bool) {
		t.Helper()
		app := rec.AppenderV2(t.Context())
		for i := range 3 {
			ls := labels.FromStrings("__name__", family, "i", string(rune('a'+i)))
			if _, err := app.Append(0, ls, 0, 1000, 1, nil, nil, storage.AOptions{MetricFamilyName: family, Metadata: m}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		} else if err := app.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	appendOne("committed_total", md("counter", "Kept."), true)
	appendOne("rolled_back_total", md("counter", "Not kept."), false)
	appendOne("no_metadata", metadata.Metadata{}, true)

	want := map[string][]metadata.Metadata{"committed_total": {md("counter", "Kept.")}}
	if got := s.All(); !reflect.DeepEqual(got, want) {
		t.Errorf("All() = %v, want %v", got, want)
	}
}
