// Package memtrim hands back to the operating system the memory that only
// start-up needed, once the server is ready (Startup), and the heap a burst
// of work left behind, once it is over (IdleTrimmer).
//
// Starting vigil touches far more than it runs afterwards: every package's
// init, the Prometheus API's OpenAPI document, DuckDB's catalog of built-in
// functions, the dynamic linker's symbol tables. The heap that start-up
// left behind is garbage the runtime would keep mapped until its scavenger
// gets to it; the pages of the executable it read stay mapped in the
// process (on Linux, in large folios of up to 2 MiB each) although a server
// at rest runs only a few megabytes of its code. Measured on an idle
// server, docs/performance.md ("Idle memory").
package memtrim

import (
	"runtime/debug"
)

// Released is what Startup handed back.
type Released struct {
	// ExecutableBytes is the size of the executable's read-only mappings
	// asked to be paged out (resident or not); 0 where that is not done.
	ExecutableBytes int64
}

// Startup collects garbage and returns the heap's free pages to the
// operating system (debug.FreeOSMemory), then, on Linux, asks the kernel
// to page out the executable's clean read-only mappings (its code and
// read-only data). Pages the process uses again come back on their next
// access, from the page cache or the file; nothing is lost, so calling it
// more than once is harmless, only pointless. Call it once, when start-up
// is over.
func Startup() (Released, error) {
	debug.FreeOSMemory()
	n, err := pageOutExecutable()
	return Released{ExecutableBytes: n}, err
}
