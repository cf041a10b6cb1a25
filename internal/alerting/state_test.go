package alerting

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	fs, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Load("silences"); !errors.Is(err, ErrStateNotFound) {
		t.Fatalf("Load before Save: %v, want ErrStateNotFound", err)
	}
	save := func(content string) error {
		return fs.Save("silences", func(w io.Writer) error {
			_, err := io.WriteString(w, content)
			return err
		})
	}
	load := func() string {
		t.Helper()
		r, err := fs.Load("silences")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := save("v1"); err != nil {
		t.Fatal(err)
	}
	if got := load(); got != "v1" {
		t.Fatalf("Load = %q, want v1", got)
	}

	// A failed write leaves the previous content and no temporary file.
	boom := errors.New("boom")
	err = fs.Save("silences", func(w io.Writer) error {
		_, _ = io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Save = %v, want boom", err)
	}
	if got := load(); got != "v1" {
		t.Fatalf("after a failed Save, Load = %q, want v1", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files in the state directory: %v, want only silences", entries)
	}

	if err := save("v2"); err != nil {
		t.Fatal(err)
	}
	if got := load(); got != "v2" {
		t.Fatalf("Load = %q, want v2", got)
	}
}
