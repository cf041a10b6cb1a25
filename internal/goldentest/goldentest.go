// Package goldentest compares JSON answers of vigil's HTTP APIs with golden
// files in a test's testdata directory.
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
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("response differs from %s (run go test -update if the change is intended)\ngot:\n%s", path, pretty.Bytes())
	}
}
