package clusterconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/alertmanager/template"
	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/rules"
	"github.com/vigil-observability/vigil/internal/slo"
)

// Files is a Doc written out for the components that read files: the rules
// manager and the Alertmanager take paths.
type Files struct {
	Doc Doc
	// RuleFiles are the paths of the rule files written.
	RuleFiles []string
	// Alertmanager is the path of the alertmanager.yml written; empty when
	// the Doc has none.
	Alertmanager string
	// SLOs are the Doc's SLO specs, decoded.
	SLOs []slo.Spec
}

// Write checks d and writes it under dir, replacing what an earlier Write
// left there; on error nothing under dir changed. A rule file is always
// written to the same path (named after the path it was read from), so
// the rules manager keeps its groups' state across a change of content, as
// it does for a reload of the same file. The Alertmanager config's
// templates: are rewritten to name the templates written beside it.
func Write(d Doc, dir string) (Files, error) {
	staging := filepath.Join(dir, ".staging")
	staged, err := stage(d, staging, dir)
	if err != nil {
		return Files{}, err
	}
	defer os.RemoveAll(staging)
	out := Files{Doc: d, SLOs: staged.SLOs}
	if out.RuleFiles, err = replaceDir(staged.RuleFiles, filepath.Join(dir, "rules")); err != nil {
		return Files{}, err
	}
	if _, err = replaceDir(staged.templates, filepath.Join(dir, "templates")); err != nil {
		return Files{}, err
	}
	am := filepath.Join(dir, "alertmanager.yml")
	if staged.Alertmanager == "" {
		if err := os.Remove(am); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Files{}, err
		}
	} else {
		if err := os.Rename(staged.Alertmanager, am); err != nil {
			return Files{}, err
		}
		out.Alertmanager = am
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Files{}, err
	}
	tmp := filepath.Join(dir, docFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return Files{}, err
	}
	return out, os.Rename(tmp, filepath.Join(dir, docFile))
}

// replaceDir moves the staged files into live, under their base names,
// removes what else live holds, and returns the files' new paths.
func replaceDir(staged []string, live string) ([]string, error) {
	if err := os.MkdirAll(live, 0o755); err != nil {
		return nil, err
	}
	var out []string
	keep := map[string]bool{}
	for _, p := range staged {
		to := filepath.Join(live, filepath.Base(p))
		if err := os.Rename(p, to); err != nil {
			return nil, err
		}
		out = append(out, to)
		keep[filepath.Base(p)] = true
	}
	old, err := os.ReadDir(live)
	if err != nil {
		return nil, err
	}
	for _, e := range old {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(live, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// docFile keeps, under Write's directory, the Doc it last wrote.
const docFile = "config.json"

// Written is the Doc Write last wrote under dir; an error when none.
func Written(dir string) (Doc, error) {
	b, err := os.ReadFile(filepath.Join(dir, docFile))
	if err != nil {
		return Doc{}, err
	}
	var d Doc
	if err := json.Unmarshal(b, &d); err != nil {
		return Doc{}, fmt.Errorf("%w: %s: %w", ErrBadCommand, docFile, err)
	}
	return d, nil
}

// Check is what Write checks, in a temporary directory: that the rule
// files parse, the SLOs generate valid rules and the Alertmanager
// configuration loads.
func Check(d Doc) error {
	dir, err := os.MkdirTemp("", "vigil-clusterconfig-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, err = stage(d, dir, dir)
	return err
}

// stagedDoc is a Doc written into a staging directory.
type stagedDoc struct {
	Files
	templates []string
}

// stage writes d into dir, which it empties first, and checks it. The
// Alertmanager config names its templates where Write moves them, under
// liveDir.
func stage(d Doc, dir, liveDir string) (stagedDoc, error) {
	if err := os.RemoveAll(dir); err != nil {
		return stagedDoc{}, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		return stagedDoc{}, err
	}
	out := stagedDoc{Files: Files{Doc: d}}
	for _, f := range d.RuleFiles {
		p := filepath.Join(dir, ruleFileName(f.Name))
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			return stagedDoc{}, err
		}
		out.RuleFiles = append(out.RuleFiles, p)
	}
	if err := rules.Validate(out.RuleFiles, nil); err != nil {
		return stagedDoc{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(d.SLOs) > 0 {
		var n yaml.Node
		if err := yaml.Unmarshal(d.SLOs, &n); err != nil {
			return stagedDoc{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
		}
		specs, err := slo.Decode(&n)
		if err != nil {
			return stagedDoc{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
		}
		if len(specs) > 0 {
			if _, err := slo.Generate(specs); err != nil {
				return stagedDoc{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
			}
		}
		out.SLOs = specs
	}
	if len(d.Alertmanager) > 0 {
		var live []string
		for _, f := range d.Templates {
			p := filepath.Join(dir, "templates", ruleFileName(f.Name))
			if err := os.WriteFile(p, f.Content, 0o644); err != nil {
				return stagedDoc{}, err
			}
			out.templates = append(out.templates, p)
			live = append(live, filepath.Join(liveDir, "templates", filepath.Base(p)))
		}
		if _, err := template.FromGlobs(out.templates); err != nil {
			return stagedDoc{}, fmt.Errorf("%w: alertmanager templates: %w", ErrInvalid, err)
		}
		conf, err := withTemplates(d.Alertmanager, live)
		if err != nil {
			return stagedDoc{}, fmt.Errorf("%w: alertmanager config: %w", ErrInvalid, err)
		}
		out.Alertmanager = filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(out.Alertmanager, conf, 0o644); err != nil {
			return stagedDoc{}, err
		}
		if err := alerting.ValidateConfig(out.Alertmanager); err != nil {
			return stagedDoc{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return out, nil
}

// withTemplates returns the Alertmanager config am with its templates:
// naming paths instead: the replicated templates, written where the globs
// it had cannot find them. A config without templates: is left as it is.
func withTemplates(am []byte, paths []string) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(am, &n); err != nil {
		return nil, err
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return am, nil // not a mapping: the config check says what is wrong
	}
	m := n.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "templates" {
			continue
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, p := range paths {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
		}
		m.Content[i+1] = seq
		return yaml.Marshal(&n)
	}
	return am, nil
}

// ruleFileName is where the rule file read from name is written: a short
// hash of the whole name keeps two files of one base name apart, the base
// name keeps it recognisable in the rules API.
func ruleFileName(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:4]) + "-" + filepath.Base(name)
}
