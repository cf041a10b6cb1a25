package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/vigil-observability/vigil/internal/alerting"
	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/doctor"
)

// runDoctor asks a running server for a fresh diagnosis and prints it, or,
// with --offline, diagnoses a configuration without any server. It exits 1
// when a finding is critical, so scripts and CI can gate on it, and 2 when
// it could not diagnose at all (no server, a configuration that does not
// load).
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf apiFlags
	sf.add(fs, "the vigil server to diagnose", "read")
	offline := fs.Bool("offline", false, "diagnose the --config file without a server: the checks that need no live data (scrape configs, rules against routes)")
	configFile := fs.String("config", "", "with --offline, the vigil.yaml to diagnose")
	format := fs.String("format", "text", "text or json")
	timeout := fs.Duration("timeout", time.Minute, "how long the checks may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil doctor: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "vigil doctor: --format must be text or json, not %q\n", *format)
		return 2
	}
	if *offline != (*configFile != "") {
		fmt.Fprintln(stderr, "vigil doctor: --offline and --config go together: vigil doctor --offline --config vigil.yaml (without them, it asks --server)")
		return 2
	}
	httpCfg, err := sf.httpConfig()
	if err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
		return 2
	}
	var rep doctor.Report
	var body []byte
	if *offline {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		var err error
		if rep, err = diagnoseOffline(ctx, *configFile); err != nil {
			fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
			return 2
		}
		if body, err = json.Marshal(rep); err != nil {
			fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
			return 2
		}
		body = append(body, '\n')
	} else {
		var code int
		if rep, body, code = askServer(sf.server, httpCfg, *timeout, stderr); code != 0 {
			return code
		}
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

// askServer fetches a fresh report from a running server; code is the
// exit code when it could not.
func askServer(server string, httpCfg commoncfg.HTTPClientConfig, timeout time.Duration, stderr io.Writer) (rep doctor.Report, body []byte, code int) {
	client, err := commoncfg.NewClientFromConfig(httpCfg, "vigil-doctor")
	if err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
		return rep, nil, 2
	}
	client.Timeout = timeout
	resp, err := client.Get(strings.TrimRight(server, "/") + "/api/doctor?refresh=1")
	if err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %v\n", err)
		return rep, nil, 2
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "vigil doctor: %s answered HTTP %d: %s %v\n", server, resp.StatusCode, strings.TrimSpace(string(body)), err)
		return rep, nil, 2
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		fmt.Fprintf(stderr, "vigil doctor: %s did not answer a doctor report: %v\n", server, err)
		return rep, nil, 2
	}
	return rep, body, 0
}

// diagnoseOffline loads the configuration at path and everything it names
// (rule files, SLOs, alertmanager.yml) as the server would, without
// starting anything or writing into the data directory, and runs the
// checks that need no live data. An error means the configuration would
// not load in the server either.
func diagnoseOffline(ctx context.Context, path string) (doctor.Report, error) {
	cfg, err := config.Load(path, nil)
	if err != nil {
		return doctor.Report{}, err
	}
	rc, err := rulesConfig(cfg)
	if err != nil {
		return doctor.Report{}, err
	}
	groups, err := doctor.LoadRules(rc)
	if err != nil {
		return doctor.Report{}, err
	}
	// Without an alertmanager.yml the server writes and runs its default
	// one; the same configuration is read here from memory.
	var routes *alerting.Routes
	if cfg.AlertmanagerConfigFile != "" {
		routes, err = alerting.LoadRoutes(cfg.AlertmanagerConfigFile)
	} else {
		routes, err = alerting.ParseRoutes([]byte(defaultAlertmanagerConfig))
	}
	if err != nil {
		return doctor.Report{}, err
	}
	specs, err := cfg.SLOSpecs()
	if err != nil {
		return doctor.Report{}, err
	}
	off := &doctor.Offline{
		Config: cfg, Rules: groups, Routes: routes,
		AlertmanagerFile: cfg.AlertmanagerConfigFile, SLOs: specs,
	}
	d, err := doctor.New(doctor.Options{Checks: off.Checks()})
	if err != nil {
		return doctor.Report{}, err
	}
	return d.Check(ctx), nil
}
