package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/vigil-observability/vigil/internal/clusterapi"
)

const clusterUsage = `Usage:
  vigil cluster status [--server URL] [--output text|json]
  vigil cluster join --id ID --address HOST:PORT [--api-url URL] [--server URL]
  vigil cluster remove --id ID [--server URL]

status prints the cluster as --server sees it (GET /api/v1/cluster).
join and remove change its membership through the leader (the server
needs admin endpoints on, and an admin credential when authentication is
on); sent to a follower, they go to the leader it names. Each takes
--bearer-token-file, --basic-auth-user with --basic-auth-password-file,
--ca-file and --timeout (vigil cluster <command> -h).
`

// runCluster reads and changes a running cluster's membership through a
// server's API. It exits 2 on a usage error, 1 when the server could not
// be asked or refused.
func runCluster(args []string, stdout, stderr io.Writer) int {
	cmd, role, code, done := subcommand("vigil cluster", clusterUsage, args, stderr,
		map[string]string{"status": "read", "join": "admin", "remove": "admin"})
	if done {
		return code
	}
	fs, sf, timeout := apiFlagSet("vigil cluster "+cmd, role, stderr, 30*time.Second, "how long the request may take")
	output := fs.String("output", "text", "text or json (the API's data)")
	var id, addr string
	if cmd != "status" {
		fs.StringVar(&id, "id", "", "the member's cluster.node_id")
	}
	var apiURL string
	if cmd == "join" {
		fs.StringVar(&addr, "address", "", "the new member's Raft host:port (its cluster.advertise_addr, or bind_addr)")
		fs.StringVar(&apiURL, "api-url", "", "the new member's vigil API base URL, for the peers line printed after the join (Raft keeps no API address: every node reads it from its peers)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "vigil cluster %s: %s\n", cmd, msg)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(fmt.Sprintf("unexpected arguments: %v", fs.Args()))
	case *output != "text" && *output != "json":
		return usageErr(fmt.Sprintf("--output must be text or json, not %q", *output))
	case cmd != "status" && id == "":
		return usageErr("--id is required")
	case cmd == "join" && addr == "":
		return usageErr("--address is required: the new member's Raft host:port")
	case apiURL != "" && !validAPIURL(apiURL):
		return usageErr(fmt.Sprintf("--api-url %q: want http:// or https:// and a host", apiURL))
	}
	hc, err := sf.client("vigil-cluster", *timeout)
	if err != nil {
		return usageErr(err.Error())
	}
	c := &clusterapi.Client{URL: sf.server, HTTP: hc, Redirected: func(leader, apiURL string) {
		fmt.Fprintf(stderr, "vigil cluster %s: %s is not the leader; sending to the leader, %s at %s\n", cmd, sf.server, leader, apiURL)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var st clusterapi.Status
	switch cmd {
	case "status":
		st, err = c.Status(ctx)
	case "join":
		st, err = c.Join(ctx, id, addr)
	case "remove":
		st, err = c.Remove(ctx, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil cluster %s: %v\n", cmd, err)
		return 1
	}
	if cmd == "join" {
		// The membership is in the log; the peers list each node starts
		// with (and finds the members' APIs in) is the operator's to edit.
		peer := fmt.Sprintf("{id: %s, address: %q}", id, addr)
		if apiURL != "" {
			peer = fmt.Sprintf("{id: %s, address: %q, api_url: %q}", id, addr, apiURL)
		}
		fmt.Fprintf(stderr, "vigil cluster join: %s joined; add it to cluster.peers in every node's vigil.yaml:\n    - %s\n", id, peer)
	}
	if *output == "json" {
		b, err := json.MarshalIndent(st, "", "  ")
		if err == nil {
			_, err = fmt.Fprintf(stdout, "%s\n", b)
		}
		if err != nil {
			fmt.Fprintf(stderr, "vigil cluster %s: %v\n", cmd, err)
			return 1
		}
		return 0
	}
	if err := clusterapi.WriteText(stdout, st, time.Now()); err != nil {
		fmt.Fprintf(stderr, "vigil cluster %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// validAPIURL reports whether s looks like a vigil API base URL.
func validAPIURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
