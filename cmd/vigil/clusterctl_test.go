package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// vigil cluster against a stand-in server: what it prints, what it sends,
// and its exit codes.
func TestClusterCommand(t *testing.T) {
	const status = `{"status":"success","data":{"leader":"n1","term":4,"members":[
		{"id":"n1","address":"10.0.0.1:7946","state":"leader","voter":true,"commit_index":12,"applied_index":12,"last_contact":null},
		{"id":"n2","address":"10.0.0.2:7946","state":"unknown","voter":true,"commit_index":0,"applied_index":0,"last_contact":null}]}}`
	var got []string // method, path and body of each request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		got = append(got, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+body.String()))
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/cluster/members/n9" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"not_found","error":"n9 is not a member of the cluster"}`))
			return
		}
		_, _ = w.Write([]byte(status))
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantReq    string // the request sent; "" for none
		wantOut    []string
		wantStderr string
	}{
		{name: "status", args: []string{"status"}, wantReq: "GET /api/v1/cluster",
			wantOut: []string{"leader: n1\n", "term:   4\n", "n1  10.0.0.1:7946  leader   yes    12      12       -\n", "n2  10.0.0.2:7946  unknown  yes    -"}},
		{name: "status as json", args: []string{"status", "--output", "json"}, wantReq: "GET /api/v1/cluster",
			wantOut: []string{`"leader": "n1"`, `"commit_index": 12`}},
		{name: "join", args: []string{"join", "--id", "n4", "--address", "10.0.0.4:7946"},
			wantReq: `POST /api/v1/cluster/members {"id":"n4","address":"10.0.0.4:7946"}`, wantOut: []string{"leader: n1"}},
		{name: "join with its api url", args: []string{"join", "--id", "n4", "--address", "10.0.0.4:7946", "--api-url", "https://vigil-4:7070"},
			wantReq:    `POST /api/v1/cluster/members {"id":"n4","address":"10.0.0.4:7946"}`,
			wantStderr: `    - {id: n4, address: "10.0.0.4:7946", api_url: "https://vigil-4:7070"}`},
		{name: "join with a bad api url", args: []string{"join", "--id", "n4", "--address", "h:1", "--api-url", "vigil-4:7070"}, wantCode: 2, wantStderr: "--api-url"},
		{name: "remove", args: []string{"remove", "--id", "n2"}, wantReq: "DELETE /api/v1/cluster/members/n2", wantOut: []string{"leader: n1"}},
		{name: "remove a stranger", args: []string{"remove", "--id", "n9"}, wantReq: "DELETE /api/v1/cluster/members/n9",
			wantCode: 1, wantStderr: "n9 is not a member"},
		{name: "join without address", args: []string{"join", "--id", "n4"}, wantCode: 2, wantStderr: "--address is required"},
		{name: "remove without id", args: []string{"remove"}, wantCode: 2, wantStderr: "--id is required"},
		{name: "bad output", args: []string{"status", "--output", "yaml"}, wantCode: 2, wantStderr: "text or json"},
		{name: "unknown command", args: []string{"promote"}, wantCode: 2, wantStderr: `unknown command "promote"`},
		{name: "two credentials", args: []string{"status", "--bearer-token-file", "t", "--basic-auth-user", "u", "--basic-auth-password-file", "p"},
			wantCode: 2, wantStderr: "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var stdout, stderr bytes.Buffer
			args := append([]string{"cluster"}, tc.args...)
			if tc.wantCode != 2 {
				args = append(args, "--server", srv.URL)
			}
			if code := run(args, &stdout, &stderr); code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, &stderr)
			}
			var wantReqs []string
			if tc.wantReq != "" {
				wantReqs = []string{tc.wantReq}
			}
			if strings.Join(got, "\n") != strings.Join(wantReqs, "\n") {
				t.Errorf("requests %q, want %q", got, wantReqs)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout\n%s\nlacks %q", &stdout, w)
				}
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tc.wantStderr)
			}
			if strings.Contains(strings.Join(tc.args, " "), "json") && !json.Valid(stdout.Bytes()) {
				t.Errorf("--output json printed %q", &stdout)
			}
		})
	}
}
