package configapi

import (
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/goldentest"
)

const settingsSchema = `{
  "type": "object",
  "properties": {
    "timeout": {"type": "string", "pattern": "^[0-9]+(ms|s)$"},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10}
  },
  "required": ["timeout"],
  "additionalProperties": false
}`

// TestSchema: an item's schema is set (before its first put), read, and
// enforced on every write that publishes content (put, gray, promote,
// rollback); a write that breaks it is refused with the reason and
// changes nothing; a schema the current content breaks is refused; a
// removed schema enforces nothing; the schema survives a restart.
func TestSchema(t *testing.T) {
	dir := t.TempDir()
	srv, l := newServer(t, dir)
	key := configcentre.Key{Namespace: "shop", Group: "payment", Key: "settings"}
	for _, tc := range []struct {
		golden string
		call   call
		status int
	}{
		{"schema_put.json", call{method: "PUT", path: item + "/schema", contentType: "application/schema+json", body: settingsSchema,
			header: map[string]string{AuthorHeader: "ann", MessageHeader: "settings need a timeout"}}, 200},
		{"schema_get.json", call{method: "GET", path: item + "/schema"}, 200},
		{"schema_put_violation.json", call{method: "PUT", path: item, contentType: "application/yaml", body: "timeout: soon\nretries: 11\n"}, 400},
		{"", call{method: "PUT", path: item, contentType: "application/yaml", body: "timeout: 2s\nretries: 3\n"}, 200},
		{"schema_gray_violation.json", call{method: "POST", path: item + "/gray", body: `{"content":"retries: 3\n","match":{"percent":10}}`}, 400},
		{"", call{method: "PUT", path: item, contentType: "application/json", body: `{"timeout":"5s"}`}, 200},
	} {
		code, body := do(t, srv, tc.call)
		if code != tc.status {
			t.Fatalf("%s %s: status %d, want %d: %s", tc.call.method, tc.call.path, code, tc.status, body)
		}
		if tc.golden != "" {
			t.Run(tc.golden, func(t *testing.T) { goldentest.CompareJSON(t, tc.golden, body) })
		}
	}
	it, err := l.Machine().Item(key)
	if err != nil || len(it.Versions) != 2 || it.Gray != nil {
		t.Fatalf("after the refused writes: %+v %v", it, err)
	}

	for _, tc := range []struct {
		name   string
		call   call
		status int
		reason string
	}{
		{"schema not JSON", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: `{"type":`}, 400, "schema is not JSON"},
		{"schema that does not compile", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: `{"type": 5}`}, 400, "schema:"},
		{"schema referring to a file", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: `{"$ref": "file:///etc/passwd"}`}, 400, "may only refer to itself"},
		{"schema as YAML", call{method: "PUT", path: item + "/schema", contentType: "application/yaml", body: "type: object\n"}, 415, "a schema is JSON"},
		{"empty schema", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: " "}, 400, "DELETE"},
		{"huge schema", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: `"` + strings.Repeat("x", configcentre.MaxSchemaBytes) + `"`}, 413, "over 65536 bytes"},
		{"schema the formal version breaks", call{method: "PUT", path: item + "/schema", contentType: "application/json", body: `{"required":["retries"]}`}, 400, "the formal version 2"},
		{"rollback to a version the schema allows", call{method: "POST", path: item + "/rollback?version=1"}, 200, ""},
		{"schema of a bad item", call{method: "GET", path: "/api/v1/config/shop/payment/..%2f/schema"}, 400, ""},
		{"no schema", call{method: "GET", path: "/api/v1/config/shop/payment/other/schema"}, 404, "has no schema"},
		{"delete no schema", call{method: "DELETE", path: "/api/v1/config/shop/payment/other/schema"}, 404, "has no schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, srv, tc.call)
			if code != tc.status || !strings.Contains(string(body), tc.reason) {
				t.Fatalf("got %d %s, want %d with %q", code, body, tc.status, tc.reason)
			}
		})
	}

	// A gray the schema allows, then a schema its content breaks.
	if code, body := do(t, srv, call{method: "POST", path: item + "/gray", body: `{"content":"{\"timeout\":\"9s\",\"retries\":1}","match":{"percent":10}}`}); code != 200 {
		t.Fatalf("gray: %d %s", code, body)
	}
	if code, body := do(t, srv, call{method: "PUT", path: item + "/schema", contentType: "application/json",
		body: `{"properties":{"timeout":{"enum":["2s","5s"]}}}`}); code != 400 || !strings.Contains(string(body), "the active gray's version") {
		t.Fatalf("schema the gray breaks: %d %s", code, body)
	}

	// The schema survives a restart.
	srv.Close()
	l.Close()
	srv, _ = newServer(t, dir)
	if code, body := do(t, srv, call{method: "PUT", path: item, contentType: "application/json", body: `{"retries":1}`}); code != 400 || !strings.Contains(string(body), "missing property 'timeout'") {
		t.Fatalf("after a restart: %d %s", code, body)
	}
	// Removed, it enforces nothing.
	if code, body := do(t, srv, call{method: "DELETE", path: item + "/schema"}); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body := do(t, srv, call{method: "PUT", path: item, contentType: "application/json", body: `{"retries":1}`}); code != 200 {
		t.Fatalf("put after the schema's removal: %d %s", code, body)
	}
}
