package main

import (
	"fmt"
	"io"
	"runtime"
)

// Set by the Makefile through -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "vigil %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
