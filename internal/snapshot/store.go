package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned for a bundle id that is not stored.
var ErrNotFound = errors.New("snapshot: not found")

// idPattern is what newID makes; anything else is not looked up.
var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]{1,64}-[0-9a-f]{8}$`)

// store keeps bundles as <id>.tar.gz with their manifest beside them as
// <id>.json (what the list reads), at most maxBundles of them and
// maxBytes of archives, the oldest removed first.
type store struct {
	dir        string
	maxBundles int
	maxBytes   int64
	mu         sync.Mutex
}

func openStore(dir string, maxBundles int, maxBytes int64) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &store{dir: dir, maxBundles: maxBundles, maxBytes: maxBytes}, nil
}

// put writes the bundle, then its manifest (a bundle without one is not
// listed, and is removed by the next prune), then prunes.
func (s *store) put(m Manifest, archive []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, m.ID+".tar.gz"), archive); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, m.ID+".json"), mb); err != nil {
		return err
	}
	return s.pruneLocked()
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("snapshot: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// list returns the stored bundles' manifests, newest first.
func (s *store) list() ([]Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *store) listLocked() ([]Manifest, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	out := make([]Manifest, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		var m Manifest
		if json.Unmarshal(b, &m) != nil || !idPattern.MatchString(m.ID) {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Manifest) int { return strings.Compare(b.ID, a.ID) })
	return out, nil
}

// path returns the archive of bundle id.
func (s *store) path(id string) (string, error) {
	if !idPattern.MatchString(id) {
		return "", ErrNotFound
	}
	p := filepath.Join(s.dir, id+".tar.gz")
	if _, err := os.Stat(p); err != nil {
		return "", ErrNotFound
	}
	return p, nil
}

// pruneLocked removes the oldest bundles past maxBundles or maxBytes,
// and archives that have no manifest (a put cut short).
func (s *store) pruneLocked() error {
	ms, err := s.listLocked()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	var total int64
	for i, m := range ms {
		total += m.Bytes
		if i >= s.maxBundles || (i > 0 && total > s.maxBytes) {
			_ = os.Remove(filepath.Join(s.dir, m.ID+".tar.gz"))
			_ = os.Remove(filepath.Join(s.dir, m.ID+".json"))
			continue
		}
		keep[m.ID] = true
	}
	archives, _ := filepath.Glob(filepath.Join(s.dir, "*.tar.gz"))
	for _, a := range archives {
		if !keep[strings.TrimSuffix(filepath.Base(a), ".tar.gz")] {
			_ = os.Remove(a)
		}
	}
	return nil
}

func modTime(f *os.File) (t time.Time) {
	if fi, err := f.Stat(); err == nil {
		t = fi.ModTime()
	}
	return t
}
