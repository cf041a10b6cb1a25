package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	promversion "github.com/prometheus/common/version"
)

// Set by the Makefile through -ldflags "-X main.version=... -X
// main.commit=... -X main.branch=..."; resolveBuildInfo completes them at
// start from the Go build information (see buildVersion), so that from then
// on they hold what vigil reports.
var (
	version = ""
	commit  = ""
	branch  = ""
)

// fallbackVersion is the version of a build that carries none: no -ldflags
// and no module version (a `go build` in a checkout).
const fallbackVersion = "0.0.0-dev"

// buildInfo is what vigil reports about its build: `vigil version`,
// /api/v1/status/buildinfo, /api/v2/status and vigil_build_info.
type buildInfo struct {
	// Version is semantic, without a leading v, as Prometheus and
	// Alertmanager report theirs (1.2.3, or a pre-release such as
	// 0.0.0-20261206153301-e3196ef8dde1), never a bare commit hash.
	Version  string
	Revision string
	Branch   string
}

// buildVersion resolves the build information: the -ldflags values first,
// then what the Go toolchain stamped (`go install module@version` sets the
// module version; a build with VCS stamping sets the revision).
func buildVersion(ldVersion, ldCommit, ldBranch string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: strings.TrimPrefix(ldVersion, "v"), Revision: ldCommit, Branch: ldBranch}
	if bi != nil {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && b.Revision == "" {
				b.Revision = s.Value[:min(12, len(s.Value))]
			}
		}
	}
	if b.Version == "" {
		b.Version = fallbackVersion
	}
	if b.Revision == "" {
		b.Revision = "unknown"
	}
	return b
}

// resolveBuildInfo sets version, commit and branch to what vigil reports
// and hands them to the embedded Prometheus and Alertmanager code (see
// publishBuildInfo). main calls it first.
func resolveBuildInfo() {
	bi, _ := debug.ReadBuildInfo()
	b := buildVersion(version, commit, branch, bi)
	version, commit, branch = b.Version, b.Revision, b.Branch
	publishBuildInfo(b)
}

// publishBuildInfo hands the build information to the Prometheus and
// Alertmanager code vigil embeds, which read it from
// github.com/prometheus/common/version: the Alertmanager API's
// /api/v2/status versionInfo (which amtool checks) and the User-Agent of
// scrapes and notifications ("Prometheus/<version>").
func publishBuildInfo(b buildInfo) {
	promversion.Version = b.Version
	promversion.Revision = b.Revision
	promversion.Branch = b.Branch
	promversion.GoVersion = runtime.Version()
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "vigil %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
