// Package goldentest compares what a test produced (JSON answers of vigil's
// HTTP APIs, generated files) with golden files in its testdata directory.
package goldentest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update rewrites the golden files: go test ./... -update.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Updating reports whether -update was given.
func Updating() bool { return *update }

// CompareJSON indents body and compares it with testdata/name, or writes it
// there when -update is given.
func CompareJSON(t testing.TB, name string, body []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, body)
	}
	Compare(t, name, pretty.Bytes())
}

// Compare compares got byte for byte with testdata/name, or writes it there
// when -update is given.
func Compare(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update if the change is intended)\ngot:\n%s", path, got)
	}
}
