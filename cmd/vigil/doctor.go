package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-observability/vigil/internal/doctor"
)

// runDoctor asks a running server for a fresh diagnosis and prints it. It
// exits 1 when a finding is critical, so scripts and CI can gate on it.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://localhost:7070", "the vigil server to diagnose")
	format := fs.String("format", "text", "text or json")
	timeout := fs.Duration("timeout", time.Minute, "how long the checks may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "vigil doctor: --format must be text or json, not %q\n", *format)
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(strings.TrimRight(*server, "/") + "/api/doctor?refresh=1")
	if err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
		return 2
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "vigil doctor: %s answered HTTP %d: %s %v\n", *server, resp.StatusCode, strings.TrimSpace(string(body)), err)
		return 2
	}
	var rep doctor.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %s did not answer a doctor report: %v\n", *server, err)
		return 2
	}
	if *format == "json" {
		_, err = stdout.Write(body)
	} else {
		err = doctor.WriteText(stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
		return 2
	}
	if rep.HasCritical() {
		return 1
	}
	return 0
}
