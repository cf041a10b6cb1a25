package elasticsearch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

func TestParseBulk(t *testing.T) {
	type want struct {
		op, index, id, src, errType string
	}
	for _, tc := range []struct {
		name      string
		body      string
		index     string
		maxDoc    int
		want      []want
		malformed string // part of the whole request's error
	}{
		{
			name: "index and create pairs, blank and CRLF lines",
			body: "{\"index\":{\"_index\":\"logs-a\"}}\r\n{\"message\":\"one\"}\r\n\n{\"create\":{\"_index\":\"logs-b\",\"_id\":\"x1\"}}\n{\"message\":\"two\"}",
			want: []want{{"index", "logs-a", "", `{"message":"one"}`, ""}, {"create", "logs-b", "x1", `{"message":"two"}`, ""}},
		},
		{
			name:  "the path's index when the action names none",
			body:  "{\"index\":{}}\n{\"message\":\"one\"}\n{\"index\":{\"_index\":\"other\"}}\n{\"message\":\"two\"}\n",
			index: "from-path",
			want:  []want{{"index", "from-path", "", `{"message":"one"}`, ""}, {"index", "other", "", `{"message":"two"}`, ""}},
		},
		{
			name: "delete has no document line; update and delete are refused per item",
			body: "{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"update\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"doc\":{}}\n{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"kept\"}\n",
			want: []want{{"delete", "a", "1", "", "action_request_validation_exception"}, {"update", "a", "2", `{"doc":{}}`, "action_request_validation_exception"},
				{"index", "a", "", `{"message":"kept"}`, ""}},
		},
		{
			name: "no index anywhere",
			body: "{\"index\":{}}\n{\"message\":\"one\"}\n",
			want: []want{{"index", "", "", `{"message":"one"}`, "action_request_validation_exception"}},
		},
		{
			name:   "a document over the limit fails alone",
			body:   "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"" + strings.Repeat("x", 100) + "\"}\n{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"small\"}\n",
			maxDoc: 64,
			want:   []want{{"index", "a", "", `{"message":"` + strings.Repeat("x", 100) + `"}`, "document_too_large_exception"}, {"index", "a", "", `{"message":"small"}`, ""}},
		},
		{name: "empty body", body: "\n\n", want: nil},
		{name: "an action line that is not JSON", body: "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"one\"}\nnot json\n{}\n", malformed: "action line 3"},
		{name: "two actions on one line", body: "{\"index\":{},\"create\":{}}\n{}\n", malformed: "want one action"},
		{name: "an unknown action", body: "{\"upsert\":{}}\n{}\n", malformed: `unknown action "upsert"`},
		{name: "an action without its document", body: "{\"index\":{\"_index\":\"a\"}}\n", malformed: "without a document line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := ParseBulk([]byte(tc.body), ParseOptions{DefaultIndex: tc.index, MaxDocumentBytes: tc.maxDoc})
			if tc.malformed != "" {
				if !errors.Is(err, ErrMalformedBulk) || !strings.Contains(err.Error(), tc.malformed) {
					t.Fatalf("error %v, want ErrMalformedBulk saying %q", err, tc.malformed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(tc.want) {
				t.Fatalf("%d items, want %d: %+v", len(items), len(tc.want), items)
			}
			for i, w := range tc.want {
				it := items[i]
				errType := ""
				if it.Err != nil {
					errType = it.Err.Type
				}
				if it.Op != w.op || it.Index != w.index || it.ID != w.id || string(it.Source) != w.src || errType != w.errType {
					t.Errorf("item %d: {%s %s %s %s %s}, want %+v", i, it.Op, it.Index, it.ID, it.Source, errType, w)
				}
			}
		})
	}
}

// Each document in testdata/docs maps to the record in its golden file:
// ECS fields nested and dotted, syslog shapes from rsyslog and
// syslog-ng templates, epoch milliseconds, no message, ids vigil cannot
// link.
func TestMapDocumentGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "docs", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	observed := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, ierr := MapDocument(src)
			if ierr != nil {
				t.Fatalf("mapping failed: %v", ierr)
			}
			items := []Item{{Op: OpIndex, Index: "logs-" + name, ID: "id1"}}
			out, err := (&plog.JSONMarshaler{}).MarshalLogs(ToLogs(items, []Document{d}, observed))
			if err != nil {
				t.Fatal(err)
			}
			goldentest.CompareJSON(t, filepath.Join("docs", name+".golden.json"), out)
		})
	}
}

func TestMapDocumentErrors(t *testing.T) {
	for _, tc := range []struct {
		doc, reason string
	}{
		{`not json`, "failed to parse"},
		{`[1,2]`, "failed to parse"},
		{`null`, "not a JSON object"},
		{`{"@timestamp":"yesterday","message":"x"}`, "failed to parse field [@timestamp] of type [date]"},
		{`{"@timestamp":true,"message":"x"}`, "is not a date"},
		{`{"@timestamp":1e300,"message":"x"}`, "not milliseconds since the epoch"},
	} {
		_, ierr := MapDocument([]byte(tc.doc))
		if ierr == nil || ierr.Status != 400 || ierr.Type != "mapper_parsing_exception" || !strings.Contains(ierr.Reason, tc.reason) ||
			ierr.Rejection != limits.ReasonUndecodable {
			t.Errorf("%s: %+v, want a 400 mapper_parsing_exception saying %q", tc.doc, ierr, tc.reason)
		}
	}
}

func TestSeverityNumber(t *testing.T) {
	for level, want := range map[string]plog.SeverityNumber{
		"ERROR": plog.SeverityNumberError, "warning": plog.SeverityNumberWarn, "notice": plog.SeverityNumberInfo,
		"crit": plog.SeverityNumberFatal, "Debug": plog.SeverityNumberDebug, "3": plog.SeverityNumberError,
		"verbose": plog.SeverityNumberUnspecified,
	} {
		if got := severityNumber(level); got != want {
			t.Errorf("%q: %v, want %v", level, got, want)
		}
	}
}

// Documents from one source share a resource; another source gets its own.
func TestToLogsGroupsByResource(t *testing.T) {
	var items []Item
	var docs []Document
	for _, src := range []string{
		`{"message":"a","service.name":"api","host.name":"h1"}`,
		`{"message":"b","service":{"name":"api"},"host":{"name":"h1"}}`,
		`{"message":"c","service.name":"api","host.name":"h2"}`,
		`not json`,
	} {
		d, ierr := MapDocument([]byte(src))
		items = append(items, Item{Op: OpIndex, Index: "i", Err: ierr})
		docs = append(docs, d)
	}
	ld := ToLogs(items, docs, time.Now())
	if n := ld.ResourceLogs().Len(); n != 2 {
		t.Fatalf("%d resources, want 2 (h1 and h2)", n)
	}
	if n := ld.LogRecordCount(); n != 3 {
		t.Fatalf("%d records, want 3 (the undecodable one left out)", n)
	}
}
