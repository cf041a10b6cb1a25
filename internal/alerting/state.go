package alerting

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// ErrStateNotFound is returned by StateStore.Load for a name that was never
// saved.
var ErrStateNotFound = errors.New("alerting state not found")

// StateStore holds Alertmanager's control-plane state as named, opaque
// blobs: "silences" and "nflog", in Alertmanager's own snapshot format.
// It is the seam where a replicated (Raft) store can replace the local
// files.
//
// Implementations must be safe for concurrent use. Save must be atomic and
// durable: once it returns nil the new content survives a crash (kill -9,
// power loss), and if it fails the previously saved content is intact.
// Saves of one name are applied in the order the calls are made.
type StateStore interface {
	// Load opens the last saved content of name; ErrStateNotFound if there
	// is none. The caller closes the reader.
	Load(name string) (io.ReadCloser, error)
	// Save replaces the content of name with what write produces.
	Save(name string, write func(io.Writer) error) error
}

// FileStore is a StateStore keeping each name as a file in one directory.
// The files are the ones Alertmanager itself writes into its --storage.path,
// so a data directory can move between vigil and Alertmanager.
type FileStore struct {
	dir string
	mtx sync.Mutex // serialises Saves so that the last call wins
}

var _ StateStore = (*FileStore)(nil)

// NewFileStore returns a FileStore in dir, creating the directory.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("alerting: state directory not set")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("alerting: create state directory: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

// Load implements StateStore.
func (s *FileStore) Load(name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrStateNotFound, name)
	}
	return f, err
}

// Save implements StateStore: it writes a temporary file, fsyncs it, renames
// it over the old one and fsyncs the directory, so a crash at any point
// leaves either the old or the new content.
func (s *FileStore) Save(name string, write func(io.Writer) error) (err error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()

	tmp, err := os.CreateTemp(s.dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, name)); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// countingWriter counts what passes through, for the snapshot size metrics
// Alertmanager's maintenance loops report.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
