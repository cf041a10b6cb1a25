package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type machine struct {
	cpus             int
	model, kernel    string
	memTotal, pinned string
}

func machineInfo(pin pinning) machine {
	m := machine{cpus: pin.cpus, pinned: pin.note}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				m.memTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return m
}

type version struct{ system, version, binary string }

// versions asks every binary for its version; one that is missing is
// listed as such.
func (h *harness) versions() []version {
	o := h.opts
	vs := []version{
		{"vigil", firstLine(output(o.vigil, "version")), o.vigil},
		{"Jaeger", firstLine(output(o.jaeger, "version")), h.displayBin(o.jaeger)},
		{"Prometheus", firstLine(output(o.prometheus, "--version")), h.displayBin(o.prometheus)},
		{"VictoriaMetrics", firstLine(output(o.victoria, "-version")), h.displayBin(o.victoria)},
		{"VictoriaLogs", firstLine(output(o.victoriaLogs, "-version")), h.displayBin(o.victoriaLogs)},
	}
	paths := []string{o.vigil, o.jaeger, o.prometheus, o.victoria, o.victoriaLogs}
	for i := range vs {
		v := &vs[i]
		if v.binary == "" {
			v.version = "not available"
			continue
		}
		if strings.Contains(v.version, " ERROR: ") {
			// VictoriaLogs built without its release flags prints no
			// version, and a warning about cgroup metrics on stderr.
			v.version = ""
		}
		if v.version == "" {
			// Debian's VictoriaMetrics build prints an empty version.
			v.version = debianVersion(paths[i])
		}
		if v.version == "" {
			// A peer installed from the module proxy (go install
			// ...@version) has no release flags but knows its module.
			v.version = goModuleVersion(paths[i])
		}
		if v.version == "" {
			v.version = "unknown"
		}
		if wd, err := os.Getwd(); err == nil {
			v.binary = strings.TrimPrefix(v.binary, wd+"/")
		}
	}
	// Jaeger prints its version as JSON: keep the useful fields.
	if j := &vs[1]; strings.HasPrefix(j.version, "{") {
		j.version = jaegerVersion(j.version)
	}
	return vs
}

func output(bin string, args ...string) string {
	if bin == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Standard output first: Jaeger logs a line to stderr before its
	// version; Prometheus prints its version to stderr alone.
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		return s
	}
	return strings.TrimSpace(stderr.String())
}

// peerEnv names the variable each peer's binary comes from.
func (h *harness) peerEnv() map[string]string {
	return map[string]string{h.opts.jaeger: "$JAEGER_BIN", h.opts.prometheus: "$PROMETHEUS_BIN", h.opts.victoria: "$VICTORIA_BIN", h.opts.victoriaLogs: "$VICTORIALOGS_BIN"}
}

// displayBin is how the report names a peer binary: a packaged one by its
// path, one from elsewhere on this machine by the variable that gave it,
// since that path means nothing to a reader.
func (h *harness) displayBin(bin string) string {
	if bin == "" || strings.HasPrefix(bin, "/usr/") || !filepath.IsAbs(bin) {
		return bin
	}
	if env, ok := h.peerEnv()[bin]; ok {
		return env
	}
	return bin
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// debianVersion is the version of the Debian package owning bin, if any.
func debianVersion(bin string) string {
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return ""
	}
	pkg := firstLine(output("dpkg-query", "-S", real))
	name, _, ok := strings.Cut(pkg, ":")
	if !ok {
		return ""
	}
	v := output("dpkg-query", "-W", "-f", "${Version}", name)
	if v == "" {
		return ""
	}
	return "Debian package " + name + " " + v
}

// goModuleVersion names a Go binary's main module and version, and the
// commit it was built from when the build recorded one.
func goModuleVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil || info.Main.Path == "" {
		return ""
	}
	v := info.Main.Path + " " + info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += ", commit " + s.Value
		}
	}
	return v + " (" + info.GoVersion + ")"
}

func jaegerVersion(js string) string {
	var parts []string
	for _, key := range []string{"gitVersion", "gitCommit", "BuildDate", "buildDate"} {
		i := strings.Index(js, `"`+key+`":"`)
		if i < 0 {
			continue
		}
		rest := js[i+len(key)+4:]
		if j := strings.IndexByte(rest, '"'); j >= 0 && rest[:j] != "" {
			parts = append(parts, key+" "+rest[:j])
		}
	}
	if len(parts) == 0 {
		return js
	}
	return strings.Join(parts, ", ")
}
