package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
)

// TestConfigCommand drives vigil config against the API handler over a
// store in a temporary directory.
func TestConfigCommand(t *testing.T) {
	l, err := configcentre.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(configapi.NewHandler(configapi.Options{Proposer: l, Reader: l.Machine()}))
	defer srv.Close()
	dir := t.TempDir()
	yml := filepath.Join(dir, "settings.yaml")
	if err := os.WriteFile(yml, []byte("timeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := runConfig(append(args, "--server", srv.URL), strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, step := range []struct {
		stdin string
		args  []string
		code  int
		out   string // a substring of stdout (or stderr when code != 0)
	}{
		{"", []string{"put", "shop/payment/settings", "--file", yml, "--author", "ann", "--message", "first"}, 0, "shop/payment/settings: version 1"},
		{"timeout: [\n", []string{"put", "shop/payment/settings", "--type", "yaml"}, 1, "HTTP 400: invalid: content is not YAML"},
		{"", []string{"get", "shop/payment/settings"}, 0, "timeout: 2s\n"},
		{"timeout: 5s\n", []string{"gray", "shop/payment/settings", "--labels", "zone=eu-1"}, 0, "version 2"},
		{"x", []string{"gray", "shop/payment/settings", "--percent", "5"}, 1, "HTTP 409"},
		{"", []string{"get", "shop/payment/settings", "--instance", "pod-a", "--label", "zone=eu-1", "--output", "json"}, 0, `"gray": true`},
		{"", []string{"get", "--instance", "pod-a", "--label", "zone=us-1", "shop/payment/settings"}, 0, "timeout: 2s\n"},
		{"", []string{"promote", "shop/payment/settings"}, 0, "version 3"},
		{"", []string{"abort", "shop/payment/settings"}, 1, "HTTP 404"},
		{"", []string{"rollback", "shop/payment/settings", "--version", "1", "--message", "back"}, 0, "version 4"},
		{"", []string{"history", "shop/payment/settings"}, 0, "4        formal  rollback of 1"},
		{"x", []string{"gray", "shop/payment/settings", "--percent", "101"}, 1, "outside 0-100"},
		{"", []string{"rollback", "shop/payment/settings"}, 2, "--version is required"},
		{"", []string{"get", "shop/payment"}, 2, "want namespace/group/key"},
		{"", []string{"get"}, 2, "which item"},
		{"", []string{"delete", "a/b/c"}, 2, "unknown command"},
		{`{"type":"object","required":["timeout"]}`, []string{"schema", "shop/payment/settings"}, 0, "shop/payment/settings: schema set (md5 25a2918465103f8c1cc1580ec1b015ef); the formal version 4 matches it"},
		{"", []string{"schema", "shop/payment/settings", "--show"}, 0, `"required": [`},
		{"retries: 3\n", []string{"put", "shop/payment/settings", "--type", "yaml"}, 1, "missing property 'timeout'"},
		{`{"required":["retries"]}`, []string{"schema", "shop/payment/settings"}, 1, "the formal version 4"},
		{"", []string{"schema", "shop/payment/settings", "--delete"}, 0, "shop/payment/settings: schema removed"},
		{"", []string{"schema", "shop/payment/settings", "--show"}, 1, "HTTP 404"},
		{"", []string{"schema", "shop/payment/settings", "--show", "--delete"}, 2, "together"},
	} {
		code, out, errOut := cli(step.stdin, step.args...)
		got := out
		if step.code != 0 {
			got = errOut
		}
		if code != step.code || !strings.Contains(got, step.out) {
			t.Errorf("vigil config %v: exit %d, stdout %q, stderr %q; want exit %d with %q", step.args, code, out, errOut, step.code, step.out)
		}
	}
	it, err := l.Machine().Item(configcentre.Key{Namespace: "shop", Group: "payment", Key: "settings"})
	if err != nil || it.Versions[0].Author != "ann" || it.Versions[0].Message != "first" || it.Versions[3].Message != "back" {
		t.Errorf("authors and messages: %+v %v", it.Versions, err)
	}
}
