// Command vigil is the vigil observability server and its tools. This
// package only wires components; everything it runs lives under internal/.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `vigil: one binary for traces, logs and metrics of Go services.

Usage:
  vigil server [flags]   run the server (vigil server -h lists flags)
  vigil demo [flags]     run the demo shop against a server (vigil demo -h)
  vigil doctor [flags]   find where telemetry silently breaks (vigil doctor -h)
  vigil cluster status|join|remove [flags]
                         show or change a cluster's members (vigil cluster -h)
  vigil config get|put|gray|promote|abort|rollback|history NS/GROUP/KEY [flags]
                         read and change the configuration centre (vigil config -h)
  vigil snapshot --service NAME [--out FILE] | get ID | list
                         capture every instance's fault scene (vigil snapshot -h)
  vigil version          print version, commit and Go version
`

func main() {
	resolveBuildInfo()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(args[1:], stderr)
	case "demo":
		return runDemo(args[1:], stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "cluster":
		return runCluster(args[1:], stdout, stderr)
	case "config":
		return runConfig(args[1:], os.Stdin, stdout, stderr)
	case "snapshot":
		return runSnapshot(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		printVersion(stdout)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
