// Package clusterconfig replicates the cluster-wide part of vigil's
// configuration through the consensus log, so that a reload on any node
// reaches every node, or none.
//
// Cluster-wide are the documents that decide what the cluster alerts on and
// whom it tells: the rule files (their contents, after glob expansion), the
// slos: section and the Alertmanager configuration. Only the leader
// evaluates rules and notifies, so a leader change must not change them,
// and every node must hold them ready. Everything else in vigil.yaml is the
// node's own: listen addresses, data_dir, cluster:, storage, limits, the
// web config (its certificates are per host), global: (external labels
// tell the replicas of an HA pair apart) and the scrape configs (see
// docs/cluster.md).
package clusterconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigil-observability/vigil/internal/config"
)

// Sentinel errors of the replicated configuration.
var (
	// ErrInvalid: a document was refused before it was proposed; nothing
	// changed on any node.
	ErrInvalid = errors.New("clusterconfig: invalid configuration")
	// ErrBadCommand: a log entry or snapshot this version cannot read.
	ErrBadCommand = errors.New("clusterconfig: unreadable replicated configuration")
	// ErrNotInstalled: the configuration was committed, but this node could
	// not install it and runs the previous one.
	ErrNotInstalled = errors.New("clusterconfig: committed, but not installed on this node")
	// ErrUnavailable: no leader could take the proposal now; nothing was
	// committed that the caller knows of, and a retry may succeed.
	ErrUnavailable = errors.New("clusterconfig: no leader could take the configuration; retry")
)

// File is one document by the name it had where it was read.
type File struct {
	Name    string `json:"name"`
	Content []byte `json:"content"`
}

// Doc is the cluster-wide configuration.
type Doc struct {
	// Generation counts the changes committed, from 1; 0 is "none yet".
	// Set by the log, not by the proposer.
	Generation uint64 `json:"generation"`
	// RuleFiles sorted by name: the rule_files globs expanded where the
	// reload ran.
	RuleFiles []File `json:"rule_files,omitempty"`
	// SLOs is the slos: section as YAML; empty: none.
	SLOs []byte `json:"slos,omitempty"`
	// Alertmanager is the alertmanager_config_file's content; empty: none
	// configured (alerts route to a receiver that sends nothing).
	Alertmanager []byte `json:"alertmanager,omitempty"`
	// Templates are the files the Alertmanager config's templates: globs
	// matched, sorted by name (relative to its directory when inside it).
	Templates []File `json:"templates,omitempty"`
	// Origin is the node that proposed it, for the logs and the API.
	Origin string `json:"origin,omitempty"`
}

// Digest identifies the documents' content: equal digests, equal
// configurations, whatever their generation or origin.
func (d Doc) Digest() string {
	h := sha256.New()
	field := func(tag string, b []byte) {
		h.Write([]byte(tag))
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	for _, f := range d.RuleFiles {
		field("r", []byte(f.Name))
		field("c", f.Content)
	}
	field("s", d.SLOs)
	field("a", d.Alertmanager)
	for _, f := range d.Templates {
		field("t", []byte(f.Name))
		field("c", f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Diff names what changes from one configuration to another, for a log
// line; empty when the content is the same.
func Diff(from, to Doc) string {
	parts := diffFiles("rule file ", from.RuleFiles, to.RuleFiles)
	if !bytes.Equal(from.SLOs, to.SLOs) {
		parts = append(parts, "slos changed")
	}
	if !bytes.Equal(from.Alertmanager, to.Alertmanager) {
		parts = append(parts, "alertmanager config changed")
	}
	parts = append(parts, diffFiles("alertmanager template ", from.Templates, to.Templates)...)
	return strings.Join(parts, "; ")
}

func diffFiles(what string, from, to []File) []string {
	var parts []string
	before := map[string][]byte{}
	for _, f := range from {
		before[f.Name] = f.Content
	}
	after := map[string]bool{}
	for _, f := range to {
		after[f.Name] = true
		c, ok := before[f.Name]
		switch {
		case !ok:
			parts = append(parts, what+f.Name+" added")
		case !bytes.Equal(c, f.Content):
			parts = append(parts, what+f.Name+" changed")
		}
	}
	for _, f := range from {
		if !after[f.Name] {
			parts = append(parts, what+f.Name+" removed")
		}
	}
	return parts
}

// fileKey names a file in a Doc: relative to dir (the configuration's
// directory) when it is inside it, so that two nodes with the same layout
// under different directories agree; its absolute path otherwise.
func fileKey(dir, path string) string {
	if dir == "" {
		return path
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return path
	}
	return filepath.ToSlash(rel)
}

// Collect reads cfg's cluster-wide documents from this node's files.
func Collect(cfg *config.Config) (Doc, error) {
	paths, err := cfg.RuleFilePaths()
	if err != nil {
		return Doc{}, err
	}
	var d Doc
	if d.RuleFiles, err = readFiles(cfg.Dir, paths); err != nil {
		return Doc{}, fmt.Errorf("rule file: %w", err)
	}
	if cfg.SLOs.Kind != 0 {
		if d.SLOs, err = yaml.Marshal(&cfg.SLOs); err != nil {
			return Doc{}, fmt.Errorf("slos: %w", err)
		}
	}
	if cfg.AlertmanagerConfigFile != "" {
		if d.Alertmanager, err = os.ReadFile(cfg.AlertmanagerConfigFile); err != nil {
			return Doc{}, fmt.Errorf("alertmanager config: %w", err)
		}
		if d.Templates, err = collectTemplates(cfg.AlertmanagerConfigFile, d.Alertmanager); err != nil {
			return Doc{}, fmt.Errorf("alertmanager templates: %w", err)
		}
	}
	return d, nil
}

// collectTemplates reads the files the templates: globs of the
// Alertmanager config at path match, resolved as Alertmanager does:
// relative to the config's directory.
func collectTemplates(path string, conf []byte) ([]File, error) {
	var c struct {
		Templates []string `yaml:"templates"`
	}
	if err := yaml.Unmarshal(conf, &c); err != nil {
		return nil, nil // the config check reports it
	}
	dir := filepath.Dir(path)
	var paths []string
	for _, pat := range c.Templates {
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(dir, pat)
		}
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, err
		}
		paths = append(paths, m...)
	}
	return readFiles(dir, paths)
}

// readFiles reads paths, named relative to dir when inside it, sorted and
// each once (two globs can match one file).
func readFiles(dir string, paths []string) ([]File, error) {
	var out []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: fileKey(dir, p), Content: b})
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b File) bool { return a.Name == b.Name }), nil
}
