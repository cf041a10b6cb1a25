package pprofrows_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/pprofrows"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func TestDecomposeAndBack(t *testing.T) {
	data := storagetest.PprofBytes(t, []string{"samples", "cpu"},
		storagetest.ProfileSample{Stack: []string{"leaf", "mid", "root"}, Values: []int64{2, 20}, SpanID: "00000000000000aa"},
		storagetest.ProfileSample{Stack: []string{"other", "root"}, Values: []int64{1, 10}},
	)
	types, samples, err := pprofrows.Decompose(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(types, []string{"samples", "cpu"}) || len(samples) != 2 {
		t.Fatalf("types %v, %d samples", types, len(samples))
	}
	s := samples[0]
	if s.SpanID != "00000000000000aa" || !slices.Equal(s.Values, []int64{2, 20}) || len(s.Frames) != 3 ||
		s.Frames[0].Function != "leaf" || s.Frames[2].Function != "root" || s.Frames[0].File != "src/leaf.go" || s.Frames[0].Line == 0 {
		t.Errorf("first sample %+v", s)
	}
	if _, _, err := pprofrows.Decompose([]byte("junk")); err == nil {
		t.Error("junk decomposed")
	}

	// Encoded stacks survive a round trip, separators in names included.
	frames := []storage.ProfileFrame{{Function: "a\x1eb", File: "f\x1f.go", Line: 3}, {Function: "main", Line: 9}}
	var sb strings.Builder
	pprofrows.EncodeFrames(&sb, frames)
	back := pprofrows.DecodeFrames(sb.String())
	if len(back) != 2 || back[0].Function != "a b" || back[0].File != "f .go" || back[0].Line != 3 || back[1].Function != "main" {
		t.Errorf("round trip: %+v", back)
	}
	if pprofrows.StackID(sb.String()) == pprofrows.StackID(sb.String()+"x") {
		t.Error("different stacks, same id")
	}

	// Labels: one substring per label, whole values only.
	enc := pprofrows.EncodeLabels(map[string]string{"env": "prod", "a=b": "c\x1fd"})
	if !strings.Contains(enc, pprofrows.LabelFilter("env", "prod")) || strings.Contains(enc, pprofrows.LabelFilter("env", "pro")) ||
		!strings.Contains(enc, pprofrows.LabelFilter("a=b", "c\x1fd")) {
		t.Errorf("labels %q", enc)
	}

	// A merged profile becomes a pprof go tool pprof reads.
	p := pprofrows.ToProfile(storage.MergedProfile{Stacks: []storage.ProfileStack{
		{Frames: s.Frames, Value: 20}, {Frames: samples[1].Frames, Value: 10},
	}}, "cpu", "nanoseconds")
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	q, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Sample) != 2 || len(q.Function) != 4 || q.SampleType[0].Type != "cpu" || q.Sample[0].Location[0].Line[0].Function.Name != "leaf" {
		t.Errorf("built profile:\n%v", q)
	}
}
