package main

import (
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// semver is a semantic version without a leading v, as Prometheus and
// Alertmanager report theirs.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{
		Main:     debug.Module{Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "e3196ef8dde1d28131faa3432121cc30178f8bd8"}},
	}
	devel := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	tests := []struct {
		name                   string
		ldVersion, ldCommit    string
		bi                     *debug.BuildInfo
		wantVersion, wantRevis string
	}{
		{"ldflags win", "v1.2.3", "abc", stamped, "1.2.3", "abc"},
		{"ldflags pseudo-version", "0.0.0-20261206153301-e3196ef8dde1", "e3196ef8dde1", nil, "0.0.0-20261206153301-e3196ef8dde1", "e3196ef8dde1"},
		{"go install stamps the module version", "", "", stamped, "1.4.0", "e3196ef8dde1"},
		{"a plain go build", "", "", devel, fallbackVersion, "unknown"},
		{"no build information", "", "", nil, fallbackVersion, "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := buildVersion(tc.ldVersion, tc.ldCommit, "", tc.bi)
			if b.Version != tc.wantVersion || b.Revision != tc.wantRevis {
				t.Errorf("got %+v, want version %q revision %q", b, tc.wantVersion, tc.wantRevis)
			}
			if !semver.MatchString(b.Version) {
				t.Errorf("version %q is not semantic", b.Version)
			}
		})
	}
}

// TestMakefileVersion: the version `make build` stamps is semantic on any
// commit, tagged or not (never a bare commit hash).
func TestMakefileVersion(t *testing.T) {
	out, err := makeCommand("-s", "version").Output()
	if err != nil {
		t.Fatalf("make version: %v", err)
	}
	if v := strings.TrimSpace(string(out)); !semver.MatchString(v) {
		t.Errorf("make version = %q, not a semantic version", v)
	}
}

// TestStatusEndpoints: the build and settings status endpoints say what
// Prometheus's and Alertmanager's do: buildinfo and the Alertmanager API's
// versionInfo carry vigil's version, and /status/flags its settings under
// Prometheus's flag names.
func TestStatusEndpoints(t *testing.T) {
	s := startServer(t, t.TempDir())
	var bi struct {
		Data struct{ Version, Revision, Branch, GoVersion string }
	}
	if code := s.getJSON(t, "/api/v1/status/buildinfo", &bi); code != http.StatusOK {
		t.Fatalf("buildinfo: HTTP %d", code)
	}
	if bi.Data.Version != "0.0.0-e2e" || bi.Data.Revision != "test" || bi.Data.Branch != "e2e" || bi.Data.GoVersion == "" {
		t.Errorf("buildinfo = %+v", bi.Data)
	}

	var am struct {
		VersionInfo map[string]string `json:"versionInfo"`
	}
	if code := s.getJSON(t, "/api/v2/status", &am); code != http.StatusOK {
		t.Fatalf("/api/v2/status: HTTP %d", code)
	}
	if am.VersionInfo["version"] != "0.0.0-e2e" || am.VersionInfo["revision"] != "test" || am.VersionInfo["goVersion"] == "" {
		t.Errorf("/api/v2/status versionInfo = %v", am.VersionInfo)
	}

	var flags struct{ Data map[string]string }
	if code := s.getJSON(t, "/api/v1/status/flags", &flags); code != http.StatusOK {
		t.Fatalf("flags: HTTP %d", code)
	}
	for name, want := range map[string]string{
		"storage.tsdb.retention.time": "7d",
		"query.timeout":               "2m",
		"query.max-samples":           "50000000",
		"web.listen-address":          strings.TrimPrefix(s.httpURL, "http://"),
		"web.enable-lifecycle":        "false",
	} {
		if got, ok := flags.Data[name]; !ok || got != want {
			t.Errorf("flag %s = %q (set: %v), want %q", name, got, ok, want)
		}
	}

	// amtool reads versionInfo on every call; with it empty it warned
	// "alertmanager version () ...".
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("amtool not installed (Debian package prometheus-alertmanager); CI must install it")
		}
		return
	}
	cmd := exec.Command(amtool, "--alertmanager.url="+s.httpURL, "alert", "query")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("amtool alert query: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "alertmanager version ()") {
		t.Errorf("amtool saw no version: %s", stderr.String())
	}
}

// TestServerHelpRetentionDefault: `vigil server -h` states the retention
// default as README and vigil.yaml do (7d, not 1w).
func TestServerHelpRetentionDefault(t *testing.T) {
	out, _ := exec.Command(vigilBin, "server", "-h").CombinedOutput()
	if !strings.Contains(string(out), "(default 7d)") {
		t.Errorf("server -h:\n%s", out)
	}
}
