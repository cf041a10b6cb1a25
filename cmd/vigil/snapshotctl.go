package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-observability/vigil/internal/snapshot"
)

const snapshotUsage = `Usage:
  vigil snapshot --service NAME [--out FILE] [--cpu-seconds N] [--server URL]
  vigil snapshot get ID [--out FILE] [--server URL]
  vigil snapshot list [--output text|json] [--server URL]

The first form has the server ask every live instance of the service (from
its registry, else its scrape targets) for its /debug/snapshot at once,
store the bundle with the service's traces, logs and firing alerts of the
last minutes, and downloads it (docs/snapshots.md). It needs the admin role
when authentication is on; get and list need read. Each takes
--bearer-token-file, --basic-auth-user with --basic-auth-password-file,
--ca-file and --timeout (vigil snapshot [get|list] -h).
`

// runSnapshot takes, lists and downloads incident snapshots through a
// server's API. It exits 2 on a usage error, 1 when the server could not
// be asked or refused.
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stderr, snapshotUsage)
		return 0
	}
	cmd := "take"
	if len(args) > 0 && (args[0] == "get" || args[0] == "list") {
		cmd, args = args[0], args[1:]
	}
	name := "vigil snapshot"
	if cmd != "take" {
		name += " " + cmd
	}
	role := "read"
	if cmd == "take" {
		role = "admin"
	}
	fs, sf, timeout := apiFlagSet(name, role, stderr, time.Minute, "how long the command may take (a capture takes its CPU seconds and up to 10s more)")
	var service, out, output string
	var cpuSeconds int
	switch cmd {
	case "take":
		fs.StringVar(&service, "service", "", "the service whose instances to ask")
		fs.IntVar(&cpuSeconds, "cpu-seconds", snapshot.DefaultCPUSeconds, fmt.Sprintf("each instance's CPU profile length, 1 to %d", snapshot.MaxCPUSeconds))
		fs.StringVar(&out, "out", "", "where to write the bundle (default <id>.tar.gz; - for stdout)")
	case "get":
		fs.StringVar(&out, "out", "", "where to write the bundle (default <id>.tar.gz; - for stdout)")
	case "list":
		fs.StringVar(&output, "output", "text", "text or json (the API's data)")
	}
	// get takes its ID before or after the flags.
	var id string
	if cmd == "get" && len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if cmd == "get" && id == "" && len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "%s: %s\n\n%s", name, msg, snapshotUsage)
		return 2
	}
	switch {
	case len(rest) > 0:
		return usageErr(fmt.Sprintf("unexpected arguments: %v", rest))
	case cmd == "take" && service == "":
		return usageErr("--service is required")
	case cmd == "take" && (cpuSeconds < 1 || cpuSeconds > snapshot.MaxCPUSeconds):
		return usageErr(fmt.Sprintf("--cpu-seconds must be from 1 to %d", snapshot.MaxCPUSeconds))
	case cmd == "get" && id == "":
		return usageErr("the snapshot's ID is required (vigil snapshot list)")
	case cmd == "list" && output != "text" && output != "json":
		return usageErr(fmt.Sprintf("--output must be text or json, not %q", output))
	}
	hc, err := sf.client("vigil-snapshot", *timeout)
	if err != nil {
		return usageErr(err.Error())
	}
	c := &snapshot.Client{URL: sf.server, HTTP: hc}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	switch cmd {
	case "list":
		ms, err := c.List(ctx)
		if err != nil {
			return fail(err)
		}
		if output == "json" {
			b, err := json.MarshalIndent(ms, "", "  ")
			if err != nil {
				return fail(err)
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			if err != nil {
				return fail(err)
			}
			return 0
		}
		if err := snapshot.WriteList(stdout, ms); err != nil {
			return fail(err)
		}
		return 0
	case "take":
		fmt.Fprintf(stderr, "%s: asking every instance of %s (a %ds CPU profile each)\n", name, service, cpuSeconds)
		m, err := c.Take(ctx, snapshot.Request{Service: service, CPUSeconds: cpuSeconds})
		if err != nil {
			return fail(err)
		}
		// The summary goes to stderr when the bundle goes to stdout.
		summary := stdout
		if out == "-" {
			summary = stderr
		}
		if err := snapshot.WriteSummary(summary, m); err != nil {
			return fail(err)
		}
		id = m.ID
	}
	if out == "" {
		out = id + ".tar.gz"
	}
	w, closeOut := stdout, func() error { return nil }
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return fail(err)
		}
		w, closeOut = f, f.Close
	}
	n, err := c.Get(ctx, id, w)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		if out != "-" {
			_ = os.Remove(out)
		}
		return fail(err)
	}
	if out != "-" {
		fmt.Fprintf(stderr, "%s: wrote %s (%d bytes)\n", name, out, n)
	}
	return 0
}
