package lokipush

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/goldentest"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
)

// now is the decoders' clock in these tests; t0 is its Unix second.
var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const t0 = 1767323045

func testDecoder(opts Options) *Decoder {
	opts.Now = func() time.Time { return now }
	return NewDecoder(opts)
}

func TestDecode(t *testing.T) {
	strict := Options{MaxLineBytes: 16, MaxLabelsPerStream: 3, MaxAge: time.Hour, MaxFuture: time.Minute}
	for _, tc := range []struct {
		name        string
		opts        Options
		contentType string
		body        []byte
	}{
		{
			name:        "proto_streams",
			contentType: "application/x-protobuf",
			body: snappyPush(
				pbStream{labels: `{job="api", host="h1"}`, hash: 1234, entries: []pbEntry{
					{sec: t0, nsec: 1, line: "started"},
					{sec: t0 + 1, line: "GET /x 200", metadata: []Label{{"trace_id", "0af7651916cd43dd8448eb211c80319c"}}, unknown: true},
				}},
				pbStream{labels: `{app='web',path="C:\\logs\t\u00e9"}`, entries: []pbEntry{{sec: t0, line: ""}}},
			),
		},
		{
			name:        "proto_no_content_type",
			contentType: "",
			body:        snappyPush(pbStream{labels: "{a=`raw\\n`}", entries: []pbEntry{{sec: t0, line: "x"}}}),
		},
		{
			name:        "proto_partial",
			opts:        strict,
			contentType: "application/x-protobuf",
			body: snappyPush(
				pbStream{labels: `{job="ok"}`, entries: []pbEntry{
					{sec: t0, line: "kept"},
					{sec: t0, line: "this line is longer than sixteen bytes"},
					{sec: t0 - 7200, line: "too old"},
					{sec: t0 + 120, line: "too new"},
					{sec: t0, nsec: 2e9, line: "bad nanos"},
					{sec: t0, line: "many md", metadata: []Label{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}},
				}},
				pbStream{labels: `{job="x"`, entries: []pbEntry{{sec: t0, line: "a"}, {sec: t0, line: "b"}}},
				pbStream{labels: `{a="1",b="2",c="3",d="4"}`, entries: []pbEntry{{sec: t0, line: "a"}}},
				pbStream{labels: `{}`, entries: []pbEntry{{sec: t0, line: "a"}}},
				pbStream{labels: `{a="1",a="2"}`, entries: []pbEntry{{sec: t0, line: "a"}}},
				pbStream{labels: `{a=""}`, entries: []pbEntry{{sec: t0, line: "a"}}},
				pbStream{labels: `{job="empty dropped", host=""}`, entries: []pbEntry{{sec: t0, line: "kept"}}},
				pbStream{labels: `{job="second"}`, entries: []pbEntry{{sec: t0, line: "kept too"}}},
				pbStream{labels: `{no entries`},
				pbStream{entries: []pbEntry{{sec: t0, line: "no labels"}}},
			),
		},
		{
			name:        "proto_malformed_stream",
			contentType: "application/x-protobuf",
			body: snappy.Encode(nil, append(
				pbPush(pbStream{labels: `{job="ok"}`, entries: []pbEntry{{sec: t0, line: "kept"}}}),
				// A stream whose length prefix is right but whose inside
				// is a truncated varint.
				0x0a, 0x02, 0x08, 0xff,
			)),
		},
		{
			name:        "proto_invalid_utf8",
			contentType: "application/x-protobuf",
			body: snappyPush(pbStream{labels: "{job=\"a\xffb\"}", entries: []pbEntry{
				{sec: t0, line: "bad \xc3\x28 byte", metadata: []Label{{"k\xfe", "v"}}},
			}}),
		},
		{
			name:        "json_streams",
			contentType: "application/json; charset=utf-8",
			body: []byte(`{"streams":[
				{"stream":{"service_name":"checkout","level":"error"},"values":[
					["1767323045000000001","payment failed"],
					["1767323046000000000","retrying",{"trace_id":"0af7651916cd43dd8448eb211c80319c","attempt":"2"}]
				]},
				{"stream":{"job":"batch"},"values":[[1767323045000000000,"numeric timestamp"]]}
			]}`),
		},
		{
			name:        "json_partial",
			opts:        strict,
			contentType: "application/json",
			body: []byte(`{"streams":[
				{"stream":{"job":"ok"},"values":[
					["1767323045000000000","kept"],
					["yesterday","bad timestamp"],
					["1767323045000000000"],
					["1767323045000000000","this line is longer than sixteen bytes"],
					["1767323045000000000","bad metadata",{"a":1}]
				]},
				{"stream":{"job":"ok"},"values":"not an array"},
				{"stream":{"bad-name":"x"},"values":[["1767323045000000000","a"]]},
				{"stream":{},"values":[["1767323045000000000","a"]]},
				{"stream":{"job":"empty dropped","host":""},"values":[["1767323045000000000","kept"]]},
				{"stream":{"a":"1","b":"2","c":"3","d":"4"},"values":[["1767323045000000000","a"]]}
			]}`),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := testDecoder(tc.opts).Decode(tc.body, tc.contentType)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Compare(t, tc.name+".golden", []byte(dump(res)))
			if (res.Rejected() > 0) != errors.Is(res.Err(), ErrRejected) {
				t.Errorf("Rejected() = %d but Err() = %v", res.Rejected(), res.Err())
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	// A bomb: snappy's length header claims 1 GiB, the body is a few bytes.
	bomb := []byte{0x80, 0x80, 0x80, 0x80, 0x04, 0x00}
	valid := snappyPush(pbStream{labels: `{a="b"}`, entries: []pbEntry{{sec: t0, line: "x"}}})
	for _, tc := range []struct {
		name        string
		opts        Options
		contentType string
		body        []byte
		want        error
	}{
		{"snappy bomb", Options{}, "application/x-protobuf", bomb, ErrTooLarge},
		{"over decoded cap", Options{MaxDecodedBytes: 10}, "application/x-protobuf", valid, ErrTooLarge},
		{"truncated snappy", Options{}, "application/x-protobuf", valid[:len(valid)-3], ErrMalformed},
		{"not snappy", Options{}, "application/x-protobuf", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"framed snappy", Options{}, "application/x-protobuf", framed(t, pbPush(pbStream{labels: `{a="b"}`})), ErrMalformed},
		{"truncated protobuf", Options{}, "application/x-protobuf", snappy.Encode(nil, []byte{0x0a, 0x10, 0x01}), ErrMalformed},
		{"bad tag", Options{}, "application/x-protobuf", snappy.Encode(nil, []byte{0x00}), ErrMalformed},
		{"json syntax", Options{}, "application/json", []byte(`{"streams":[`), ErrMalformed},
		{"json over cap", Options{MaxDecodedBytes: 5}, "application/json", []byte(`{"streams":[]}`), ErrTooLarge},
		{"text", Options{}, "text/plain", []byte("x"), ErrUnsupportedContentType},
		{"bad media type", Options{}, "application/json; =", []byte("{}"), ErrUnsupportedContentType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := testDecoder(tc.opts).Decode(tc.body, tc.contentType)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode() = %v, %v; want %v", res, err, tc.want)
			}
		})
	}
}

func framed(t *testing.T, raw []byte) []byte {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnappyBombIsCheap pins that a body claiming a huge decoded size is
// refused before anything of that size is allocated.
func TestSnappyBombIsCheap(t *testing.T) {
	bomb := snappy.Encode(nil, make([]byte, 1<<20)) // 1 MiB of zeros, ~50 KiB compressed
	d := testDecoder(Options{MaxDecodedBytes: 64 << 10})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := d.Decode(bomb, "application/x-protobuf"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Decode() error = %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("100 refused bombs allocated %d bytes; the size check should come before decoding", got)
	}
}

// TestMaxEntries pins that tiny entries cannot multiply a small body into
// a large Result: past MaxEntries they are counted, not kept.
func TestMaxEntries(t *testing.T) {
	entries := make([]pbEntry, 50)
	body := snappyPush(pbStream{labels: `{a="b"}`, entries: entries}, pbStream{labels: `{a="c"}`, entries: entries})
	res, err := testDecoder(Options{MaxEntries: 60}).Decode(body, "")
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, s := range res.Streams {
		kept += len(s.Entries)
	}
	if kept != 60 || res.Entries != 60 {
		t.Errorf("kept %d entries (Entries=%d), want 60", kept, res.Entries)
	}
	if rj := res.Rejections(); len(rj) != 1 || rj[0].Reason != ReasonTooManyEntries || rj[0].Entries != 40 {
		t.Errorf("Rejections() = %+v, want 40 too_many_entries", rj)
	}
}

// TestDecodeGzipJSON shows the receiver's path for a gzipped JSON body:
// httpbody undoes the Content-Encoding, Decode the rest.
func TestDecodeGzipJSON(t *testing.T) {
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	if _, err := zw.Write([]byte(`{"streams":[{"stream":{"app":"pino"},"values":[["1767323045000000000","hello"]]}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/loki/api/v1/push", &zbuf)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	body, err := httpbody.NewReader(1 << 20).ReadRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Release()
	res, err := testDecoder(Options{}).Decode(body.Bytes(), req.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dump(res), "entries=1 rejected=0 repaired=0\nstream {app=\"pino\"}\n  2026-01-02T03:04:05Z \"hello\"\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseLabels(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: `{job="x", host="y"}`, want: `{host="y", job="x"}`},
		{in: ` { a = "1" , } `, err: "expected label name"},
		{in: `{a="\"quoted\" \u00e9 \x41"}`, want: `{a="\"quoted\" é A"}`},
		{in: `{a='it\'s'}`, want: `{a="it's"}`},
		{in: "{a=`c:\\dir`}", want: `{a="c:\\dir"}`},
		{in: `{_x1="v"}`, want: `{_x1="v"}`},
		{in: `job="x"`, err: "expected '{'"},
		{in: `{1a="x"}`, err: "expected label name"},
		{in: `{a-b="x"}`, err: "expected '=' after label name \"a\""},
		{in: `{a=x}`, err: "expected quoted label value"},
		{in: `{a="x"`, err: "expected ',' or '}'"},
		{in: `{a="x`, err: "unterminated quoted label value"},
		{in: "{a=`x}", err: "unterminated raw string"},
		{in: `{a="\q"}`, err: "bad escape"},
		{in: `{a="x"} extra`, err: "unexpected text after '}'"},
		{in: `{a="x",a="y"}`, err: "duplicate label name \"a\""},
		{in: `{}`, err: "at least one label pair with a non-empty value is required"},
		{in: `{a="", b=''}`, err: "at least one label pair with a non-empty value is required"},
		{in: `{a="x", b=""}`, want: `{a="x"}`},
		{in: "{a=\"x\ny\"}", err: "newline in quoted label value"},
	} {
		ls, err := ParseLabels(tc.in)
		switch {
		case tc.err != "":
			if !errors.Is(err, ErrBadLabels) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLabels(%q) error = %v, want ErrBadLabels containing %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("ParseLabels(%q): %v", tc.in, err)
		case labelString(ls) != tc.want:
			t.Errorf("ParseLabels(%q) = %s, want %s", tc.in, labelString(ls), tc.want)
		}
	}
}

func TestLogs(t *testing.T) {
	body := snappyPush(
		pbStream{labels: `{service_name="checkout", host="h1", namespace="prod", level="info"}`, entries: []pbEntry{
			{sec: t0, line: "plain"},
			{sec: t0, line: "from metadata", metadata: []Label{
				{"traceID", "0af7651916cd43dd8448eb211c80319c"}, {"span_id", "b7ad6b7169203331"}, {"level", "error"}, {"user", "u1"},
			}},
			{sec: t0, line: "bad id kept as attribute", metadata: []Label{{"trace_id", "not-hex"}}},
			{sec: t0, line: `{"msg":"json line","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7"}`},
			{sec: t0, line: `level=warn msg="logfmt line" traceid=a3ce929d0e0e4736`},
		}},
		pbStream{labels: `{app="web", trace_id="0af7651916cd43dd8448eb211c80319c"}`, entries: []pbEntry{{sec: t0, line: "id from label"}}},
		pbStream{labels: `{job="varlogs", filename="/var/log/syslog"}`, entries: []pbEntry{
			{sec: t0, line: "job names the service"},
			// Without a level label, the line's own level is the severity.
			{sec: t0, line: `{"level":50,"msg":"pino's number"}`},
			{sec: t0, line: `{"severity":"WARNING","msg":"json"}`},
			{sec: t0, line: `lvl=err msg="logfmt"`},
			{sec: t0, line: `level=verbose msg="not a level vigil knows"`},
		}},
	)
	res, err := testDecoder(Options{}).Decode(body, "application/x-protobuf")
	if err != nil {
		t.Fatal(err)
	}
	ld := res.Logs(now)
	if ld.LogRecordCount() != res.Entries {
		t.Errorf("LogRecordCount() = %d, want %d", ld.LogRecordCount(), res.Entries)
	}
	js, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.CompareJSON(t, "logs.golden.json", js)
}

func TestLogfmtFields(t *testing.T) {
	got := labelString(logfmtFields(`ts=1 msg="a \"b\" c" bare trace_id=abc x= y="unterminated`))
	want := `{ts="1", msg="a \\\"b\\\" c", trace_id="abc", x="", y="unterminated"}`
	if got != want {
		t.Errorf("logfmtFields = %s, want %s", got, want)
	}
}
