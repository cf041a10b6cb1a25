package clusterconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
// it does for a reload of the same file.
func Write(d Doc, dir string) (Files, error) {
	staging := filepath.Join(dir, ".staging")
	staged, err := stage(d, staging)
	if err != nil {
		return Files{}, err
	}
	defer os.RemoveAll(staging)
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		return Files{}, err
	}
	out := Files{Doc: d, SLOs: staged.SLOs}
	keep := map[string]bool{}
	for _, p := range staged.RuleFiles {
		live := filepath.Join(rulesDir, filepath.Base(p))
		if err := os.Rename(p, live); err != nil {
			return Files{}, err
		}
		out.RuleFiles = append(out.RuleFiles, live)
		keep[filepath.Base(p)] = true
	}
	old, err := os.ReadDir(rulesDir)
	if err != nil {
		return Files{}, err
	}
	for _, e := range old {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(rulesDir, e.Name())); err != nil {
				return Files{}, err
			}
		}
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
	_, err = stage(d, dir)
	return err
}

// stage writes d into dir, which it empties first, and checks it.
func stage(d Doc, dir string) (Files, error) {
	if err := os.RemoveAll(dir); err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	out := Files{Doc: d}
	for _, f := range d.RuleFiles {
		p := filepath.Join(dir, ruleFileName(f.Name))
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			return Files{}, err
		}
		out.RuleFiles = append(out.RuleFiles, p)
	}
	if err := rules.Validate(out.RuleFiles, nil); err != nil {
		return Files{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(d.SLOs) > 0 {
		var n yaml.Node
		if err := yaml.Unmarshal(d.SLOs, &n); err != nil {
			return Files{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
		}
		specs, err := slo.Decode(&n)
		if err != nil {
			return Files{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
		}
		if len(specs) > 0 {
			if _, err := slo.Generate(specs); err != nil {
				return Files{}, fmt.Errorf("%w: slos: %w", ErrInvalid, err)
			}
		}
		out.SLOs = specs
	}
	if len(d.Alertmanager) > 0 {
		out.Alertmanager = filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(out.Alertmanager, d.Alertmanager, 0o644); err != nil {
			return Files{}, err
		}
		if err := alerting.ValidateConfig(out.Alertmanager); err != nil {
			return Files{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return out, nil
}

// ruleFileName is where the rule file read from name is written: a short
// hash of the whole name keeps two files of one base name apart, the base
// name keeps it recognisable in the rules API.
func ruleFileName(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:4]) + "-" + filepath.Base(name)
}
