package clusterconfig_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"

	"github.com/vigil-observability/vigil/internal/clusterconfig"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doc builds a Doc from testdata files: rule files by name, then "slos:"
// and "am:" prefixed names.
func doc(t *testing.T, names ...string) clusterconfig.Doc {
	t.Helper()
	var d clusterconfig.Doc
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "slos:"):
			d.SLOs = read(t, strings.TrimPrefix(n, "slos:"))
		case strings.HasPrefix(n, "am:"):
			d.Alertmanager = read(t, strings.TrimPrefix(n, "am:"))
		default:
			d.RuleFiles = append(d.RuleFiles, clusterconfig.File{Name: "/etc/vigil/" + n, Content: read(t, n)})
		}
	}
	return d
}

func apply(t *testing.T, m *clusterconfig.Machine, cmd []byte, err error) clusterconfig.Result {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Apply(cmd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := clusterconfig.DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestMachineGenerations(t *testing.T) {
	m := clusterconfig.NewMachine()
	one, two := doc(t, "rules.yml"), doc(t, "rules.yml", "am:alertmanager.yml")
	for _, step := range []struct {
		name        string
		cmd         func(clusterconfig.Doc) ([]byte, error)
		doc         clusterconfig.Doc
		wantGen     uint64
		wantChanged bool
	}{
		{"the first leader's files", clusterconfig.EncodeInit, one, 1, true},
		{"a second first leader's changes nothing", clusterconfig.EncodeInit, two, 1, false},
		{"a reload of the same content changes nothing", clusterconfig.EncodeSet, one, 1, false},
		{"a reload of new content", clusterconfig.EncodeSet, two, 2, true},
		{"back to the first content: a new generation", clusterconfig.EncodeSet, one, 3, true},
	} {
		cmd, err := step.cmd(step.doc)
		res := apply(t, m, cmd, err)
		if res.Generation != step.wantGen || res.Changed != step.wantChanged || res.Digest != m.Current().Digest() {
			t.Errorf("%s: %+v, want generation %d changed %v and the current digest %s", step.name, res, step.wantGen, step.wantChanged, m.Current().Digest())
		}
	}
	if cur := m.Current(); cur.Generation != 3 || cur.Digest() != one.Digest() {
		t.Errorf("current: generation %d digest %s, want 3 and %s", cur.Generation, cur.Digest(), one.Digest())
	}
	if _, err := m.Apply([]byte(`{"op":"drop"}`)); !errors.Is(err, clusterconfig.ErrBadCommand) {
		t.Errorf("unknown operation: %v, want ErrBadCommand", err)
	}

	write, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	m2 := clusterconfig.NewMachine()
	if err := m2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := m2.Current(); got.Generation != 3 || got.Digest() != one.Digest() {
		t.Errorf("restored: generation %d digest %s, want 3 and %s", got.Generation, got.Digest(), one.Digest())
	}
	select {
	case <-m2.Changed():
	default:
		t.Error("a restore did not signal a change")
	}
	if err := m2.Reset(); err != nil || m2.Current().Generation != 0 {
		t.Errorf("after Reset: generation %d, %v; want 0", m2.Current().Generation, err)
	}
}

func TestDigestAndDiff(t *testing.T) {
	a, b := doc(t, "rules.yml", "slos:slos.yml"), doc(t, "rules.yml", "slos:slos.yml")
	b.Generation, b.Origin = 7, "n2"
	if a.Digest() != b.Digest() || clusterconfig.Diff(a, b) != "" {
		t.Errorf("same content, other generation and origin: digests %s %s, diff %q; want equal and none", a.Digest(), b.Digest(), clusterconfig.Diff(a, b))
	}
	c := doc(t, "bad_rules.yml", "am:alertmanager.yml")
	c.RuleFiles = append(c.RuleFiles, clusterconfig.File{Name: "/etc/vigil/rules.yml", Content: []byte("groups: []\n")})
	want := "rule file /etc/vigil/bad_rules.yml added; rule file /etc/vigil/rules.yml changed; slos changed; alertmanager config changed"
	if got := clusterconfig.Diff(a, c); got != want || a.Digest() == c.Digest() {
		t.Errorf("Diff = %q, want %q (digests %s %s)", got, want, a.Digest(), c.Digest())
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		valid bool
	}{
		{"nothing", nil, true},
		{"rules, slos and alertmanager", []string{"rules.yml", "slos:slos.yml", "am:alertmanager.yml"}, true},
		{"a rule that does not parse", []string{"rules.yml", "bad_rules.yml"}, false},
		{"an slo out of range", []string{"slos:bad_slos.yml"}, false},
		{"a route to a receiver not defined", []string{"am:bad_alertmanager.yml"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := clusterconfig.Check(doc(t, tc.files...))
			if tc.valid && err != nil || !tc.valid && !errors.Is(err, clusterconfig.ErrInvalid) {
				t.Fatalf("Check: %v, want valid=%v", err, tc.valid)
			}
		})
	}
}

func TestWriteKeepsPathsAndRefusesWhole(t *testing.T) {
	dir := t.TempDir()
	first, err := clusterconfig.Write(doc(t, "rules.yml", "am:alertmanager.yml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.RuleFiles) != 1 || first.Alertmanager == "" {
		t.Fatalf("written: %+v", first)
	}
	changed := doc(t, "am:alertmanager.yml")
	changed.RuleFiles = []clusterconfig.File{{Name: "/etc/vigil/rules.yml", Content: []byte("groups: []\n")}}
	second, err := clusterconfig.Write(changed, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.RuleFiles) != 1 || second.RuleFiles[0] != first.RuleFiles[0] {
		t.Errorf("the same rule file changed is written to %v, want the same path %v", second.RuleFiles, first.RuleFiles)
	}
	// Invalid: refused, and what is written stays.
	if _, err := clusterconfig.Write(doc(t, "bad_rules.yml"), dir); !errors.Is(err, clusterconfig.ErrInvalid) {
		t.Fatalf("Write of an invalid rule file: %v, want ErrInvalid", err)
	}
	if b, err := os.ReadFile(second.RuleFiles[0]); err != nil || string(b) != "groups: []\n" {
		t.Errorf("after a refused write the rule file holds %q, %v; want the previous content", b, err)
	}
	// Fewer files: the others go.
	third, err := clusterconfig.Write(clusterconfig.Doc{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "rules"))
	if len(third.RuleFiles) != 0 || third.Alertmanager != "" || len(left) != 0 {
		t.Errorf("an empty configuration leaves %d rule files (%d on disk) and alertmanager %q", len(third.RuleFiles), len(left), third.Alertmanager)
	}
}

// forwardTo is a Forwarder straight to another node's Syncer.
type forwardTo struct{ leader *clusterconfig.Syncer }

func (f forwardTo) Forward(ctx context.Context, _ *consensus.NotLeaderError, d clusterconfig.Doc) (clusterconfig.Result, error) {
	return f.leader.ProposeLocal(ctx, d)
}

type installs struct{ got []clusterconfig.Files }

func (i *installs) install(f clusterconfig.Files) error {
	if len(f.Doc.RuleFiles) > 0 && strings.Contains(string(f.Doc.RuleFiles[0].Content), "FailHere") {
		return errors.New("refused by this node")
	}
	i.got = append(i.got, f)
	return nil
}

func newSyncer(t *testing.T, m *clusterconfig.Machine, log clusterconfig.Proposer, leader bool, fwd clusterconfig.Forwarder, inst *installs) *clusterconfig.Syncer {
	t.Helper()
	s, err := clusterconfig.NewSyncer(clusterconfig.SyncerOptions{
		Machine: m, Log: log, Forwarder: fwd, Dir: t.TempDir(), Install: inst.install, NodeID: "n1",
		Leader: func() consensus.LeaderInfo { return consensus.LeaderInfo{Self: leader} },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyncerReload(t *testing.T) {
	ctx := context.Background()
	m := clusterconfig.NewMachine()
	log := consensustest.NewMemory(m)
	var inst installs
	s := newSyncer(t, m, log, true, nil, &inst)
	local := doc(t, "rules.yml")
	s.Start(local)
	if len(inst.got) != 1 || inst.got[0].Doc.Generation != 0 {
		t.Fatalf("at start with nothing committed: installs %+v, want this node's own files once", inst.got)
	}

	res, err := s.Reload(ctx, doc(t, "rules.yml", "am:alertmanager.yml"))
	if err != nil || res.Generation != 1 || s.Status().Installed.Generation != 1 {
		t.Fatalf("Reload: %+v, %v, installed %+v; want generation 1 in service", res, err, s.Status().Installed)
	}
	if _, err := s.Reload(ctx, doc(t, "bad_rules.yml")); !errors.Is(err, clusterconfig.ErrInvalid) || m.Current().Generation != 1 {
		t.Errorf("an invalid reload: %v, generation %d; want ErrInvalid and nothing committed", err, m.Current().Generation)
	}

	// Committed, but this node's Install refuses it: the previous one
	// keeps running and the status says why.
	failing := clusterconfig.Doc{RuleFiles: []clusterconfig.File{{Name: "r.yml", Content: []byte("# FailHere\ngroups: []\n")}}}
	if _, err := s.Reload(ctx, failing); !errors.Is(err, clusterconfig.ErrNotInstalled) {
		t.Errorf("a reload this node cannot install: %v, want ErrNotInstalled", err)
	}
	st := s.Status()
	if st.Committed.Generation != 2 || st.Installed.Generation != 1 || st.InstallError == "" {
		t.Errorf("status after a failed install: %+v, want committed 2, installed 1 and the error", st)
	}

	// A follower forwards to the leader, then installs what it applied.
	log.Depose()
	fm := clusterconfig.NewMachine()
	var finst installs
	leaderSide := newSyncer(t, fm, consensustest.NewMemory(fm), true, nil, &finst)
	follower := newSyncer(t, fm, log, false, forwardTo{leaderSide}, &finst)
	follower.Start(local)
	if res, err := follower.Reload(ctx, doc(t, "rules.yml")); err != nil || res.Generation != 1 || follower.Status().Installed.Generation != 1 {
		t.Errorf("Reload on a follower: %+v, %v, status %+v; want generation 1 in service", res, err, follower.Status())
	}
	noFwd := newSyncer(t, clusterconfig.NewMachine(), log, false, nil, &installs{})
	if _, err := noFwd.Reload(ctx, local); !errors.Is(err, clusterconfig.ErrUnavailable) {
		t.Errorf("Reload on a follower without a forwarder: %v, want ErrUnavailable", err)
	}
}

// A node restarting holds the committed configuration: it runs that, not
// its own files.
func TestSyncerStartPrefersCommitted(t *testing.T) {
	m := clusterconfig.NewMachine()
	committed := doc(t, "rules.yml", "am:alertmanager.yml")
	cmd, err := clusterconfig.EncodeSet(committed)
	apply(t, m, cmd, err)
	var inst installs
	s := newSyncer(t, m, consensustest.NewMemory(m), false, nil, &inst)
	s.Start(doc(t, "rules.yml"))
	if len(inst.got) != 1 || inst.got[0].Doc.Digest() != committed.Digest() || inst.got[0].Alertmanager == "" {
		t.Fatalf("installed at start: %+v, want the committed configuration", inst.got)
	}
	if st := s.Status(); !st.LocalFilesDiffer || st.Installed.Generation != 1 {
		t.Errorf("status: %+v, want generation 1 and local files differing", st)
	}
}

// The first leader of a cluster commits its own files; once there is a
// configuration, Run installs what is committed.
func TestSyncerBootstrapsAndFollows(t *testing.T) {
	m := clusterconfig.NewMachine()
	var inst installs
	s := newSyncer(t, m, consensustest.NewMemory(m), true, nil, &inst)
	local := doc(t, "rules.yml")
	s.Start(local)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().Installed.Generation != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want this leader's files committed and in service as generation 1", s.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := m.Current(); got.Digest() != local.Digest() || got.Origin != "n1" {
		t.Errorf("committed %s from %q, want the local files %s from n1", got.Digest(), got.Origin, local.Digest())
	}
}

// Two nodes laid out alike under different directories hold the same
// configuration; a file outside the configuration's directory keeps its
// absolute name.
func TestCollectNamesFilesRelativeToTheConfig(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "shared.yml")
	if err := os.WriteFile(outside, read(t, "rules.yml"), 0o644); err != nil {
		t.Fatal(err)
	}
	var docs []clusterconfig.Doc
	for range 2 {
		dir := t.TempDir()
		for name, body := range map[string][]byte{
			"rules/a.yml": read(t, "rules.yml"), "alertmanager.yml": read(t, "alertmanager.yml"),
			"vigil.yaml": []byte("rule_files: [rules/*.yml, " + outside + "]\nalertmanager_config_file: alertmanager.yml\nslos:\n" +
				"  " + strings.ReplaceAll(string(read(t, "slos.yml")), "\n", "\n  ")),
		} {
			_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := config.Load(filepath.Join(dir, "vigil.yaml"), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := clusterconfig.Collect(cfg)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	if docs[0].Digest() != docs[1].Digest() {
		t.Errorf("same layout, other directories: %s", clusterconfig.Diff(docs[0], docs[1]))
	}
	var names []string
	for _, f := range docs[0].RuleFiles {
		names = append(names, f.Name)
	}
	if want := []string{outside, "rules/a.yml"}; !slices.Equal(names, want) {
		t.Errorf("rule files named %q, want %q", names, want)
	}
	if len(docs[0].Alertmanager) == 0 || len(docs[0].SLOs) == 0 {
		t.Errorf("alertmanager %d bytes, slos %d bytes; want both read", len(docs[0].Alertmanager), len(docs[0].SLOs))
	}
}

// A node restarting before its log is replayed runs what it ran before,
// not its own (stale) files, and does not go back through the older
// generations the log replays.
func TestSyncerRestartRunsWhatItRanBefore(t *testing.T) {
	dir := t.TempDir()
	gens := []clusterconfig.Doc{doc(t, "rules.yml"), doc(t, "rules.yml", "am:alertmanager.yml")}
	start := func(m *clusterconfig.Machine, inst *installs) *clusterconfig.Syncer {
		s, err := clusterconfig.NewSyncer(clusterconfig.SyncerOptions{
			Machine: m, Log: consensustest.NewMemory(m), Dir: dir, Install: inst.install, NodeID: "n1",
			Leader: func() consensus.LeaderInfo { return consensus.LeaderInfo{} },
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(clusterconfig.Doc{}) // its own files: none
		return s
	}
	before := clusterconfig.NewMachine()
	s := start(before, &installs{})
	for _, d := range gens {
		cmd, err := clusterconfig.EncodeSet(d)
		apply(t, before, cmd, err)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}

	m := clusterconfig.NewMachine()
	var inst installs
	s = start(m, &inst)
	if len(inst.got) != 1 || inst.got[0].Doc.Generation != 2 {
		t.Fatalf("installed at restart: %+v, want generation 2 from the data directory", inst.got)
	}
	cmd, err := clusterconfig.EncodeSet(gens[0])
	apply(t, m, cmd, err) // the log replaying generation 1
	if err := s.Sync(); err != nil || len(inst.got) != 1 {
		t.Errorf("the replay of generation 1 installed %d times (%v), want not at all", len(inst.got)-1, err)
	}
	cmd, err = clusterconfig.EncodeSet(gens[1])
	apply(t, m, cmd, err)
	cmd, err = clusterconfig.EncodeSet(doc(t, "am:alertmanager.yml"))
	apply(t, m, cmd, err)
	if err := s.Sync(); err != nil || s.Status().Installed.Generation != 3 {
		t.Errorf("after the replay and a new generation: %+v, %v; want generation 3 in service", s.Status(), err)
	}
}

// The Alertmanager's templates travel with its config: read where its
// templates: globs point, written beside the copy, and the copy names them.
func TestAlertmanagerTemplates(t *testing.T) {
	dir := t.TempDir()
	amFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"alertmanager.yml": read(t, "alertmanager_templates.yml"), "templates/vigil.tmpl": read(t, "templates/vigil.tmpl"),
		"vigil.yaml": []byte("alertmanager_config_file: alertmanager.yml\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "vigil.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := clusterconfig.Collect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Templates) != 1 || d.Templates[0].Name != "templates/vigil.tmpl" {
		t.Fatalf("templates collected from %s: %+v, want templates/vigil.tmpl", amFile, d.Templates)
	}
	out, err := clusterconfig.Write(d, filepath.Join(t.TempDir(), "cluster-config"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := amconfig.LoadFile(out.Alertmanager)
	if err != nil {
		t.Fatal(err)
	}
	if len(conf.Templates) != 1 {
		t.Fatalf("the copy's templates: %q, want the one template written", conf.Templates)
	}
	if b, err := os.ReadFile(conf.Templates[0]); err != nil || !bytes.Equal(b, d.Templates[0].Content) {
		t.Errorf("the copy names %s: %q, %v; want the template", conf.Templates[0], b, err)
	}

	bad := d
	bad.Templates = []clusterconfig.File{{Name: "templates/vigil.tmpl", Content: read(t, "bad_template.tmpl")}}
	if err := clusterconfig.Check(bad); !errors.Is(err, clusterconfig.ErrInvalid) {
		t.Errorf("Check of a template that does not parse: %v, want ErrInvalid", err)
	}
	if got := clusterconfig.Diff(d, bad); got != "alertmanager template templates/vigil.tmpl changed" {
		t.Errorf("Diff = %q", got)
	}
}

// A first leader whose own files are invalid commits nothing: the cluster
// waits for a reload rather than replicating what no node can run.
func TestSyncerDoesNotBootstrapInvalidFiles(t *testing.T) {
	m := clusterconfig.NewMachine()
	s := newSyncer(t, m, consensustest.NewMemory(m), true, nil, &installs{})
	if err := s.Start(doc(t, "bad_rules.yml")); !errors.Is(err, clusterconfig.ErrInvalid) {
		t.Errorf("Start on invalid files with nothing committed: %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	s.Run(ctx)
	if g := m.Current().Generation; g != 0 {
		t.Errorf("generation %d committed from invalid files, want none", g)
	}
}
