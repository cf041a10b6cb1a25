package lokipush

import (
	"encoding/json"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/golang/snappy"
)

// fuzzOpts are small limits, so that the fuzzer reaches them.
var fuzzOpts = Options{MaxDecodedBytes: 1 << 16, MaxLineBytes: 64, MaxLabelsPerStream: 4, MaxEntries: 100}

// checkResult asserts what must hold of any Result, whatever the input.
func checkResult(t *testing.T, res *Result, inputLen int) {
	t.Helper()
	kept := 0
	for _, s := range res.Streams {
		if len(s.Labels) == 0 || len(s.Labels) > fuzzOpts.MaxLabelsPerStream {
			t.Fatalf("stream kept with %d labels", len(s.Labels))
		}
		for _, l := range s.Labels {
			if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
				t.Fatalf("invalid UTF-8 kept in label %q=%q", l.Name, l.Value)
			}
		}
		for _, e := range s.Entries {
			if len(e.Line) > fuzzOpts.MaxLineBytes || !utf8.ValidString(e.Line) {
				t.Fatalf("line kept: %q", e.Line)
			}
		}
		kept += len(s.Entries)
	}
	if kept != res.Entries || kept > fuzzOpts.MaxEntries {
		t.Fatalf("kept %d entries, Entries=%d, MaxEntries=%d", kept, res.Entries, fuzzOpts.MaxEntries)
	}
	if rj := res.Rejected(); rj > 2*inputLen+1 {
		t.Fatalf("%d rejections from %d bytes", rj, inputLen)
	}
	_ = res.Logs(now)
}

// FuzzDecodeProto feeds arbitrary protobuf bytes, snappy-compressed as an
// agent would send them.
func FuzzDecodeProto(f *testing.F) {
	f.Add(pbPush(pbStream{labels: `{job="api", host="h1"}`, hash: 7, entries: []pbEntry{
		{sec: t0, nsec: 5, line: "GET / 200 trace_id=0af7651916cd43dd8448eb211c80319c", metadata: []Label{{"span_id", "b7ad6b7169203331"}}, unknown: true},
	}}))
	f.Add(pbPush(pbStream{labels: `{a="\xff"}`, entries: []pbEntry{{line: "\xfe"}}}, pbStream{labels: "{"}))
	f.Add([]byte{0x0a, 0x02, 0x08, 0xff})
	d := testDecoder(fuzzOpts)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := d.Decode(snappy.Encode(nil, raw), "application/x-protobuf")
		if err != nil {
			return
		}
		checkResult(t, res, len(raw))
	})
}

// FuzzDecodeSnappy feeds arbitrary bodies, mostly broken snappy.
func FuzzDecodeSnappy(f *testing.F) {
	f.Add(snappyPush(pbStream{labels: `{a="b"}`, entries: []pbEntry{{sec: t0, line: "x"}}}))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04, 0x00})
	if body, err := os.ReadFile("testdata/schema_push.pb.snappy"); err == nil {
		f.Add(body)
	}
	d := testDecoder(fuzzOpts)
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := d.Decode(body, "")
		if err != nil {
			return
		}
		checkResult(t, res, fuzzOpts.MaxDecodedBytes)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"streams":[{"stream":{"app":"x"},"values":[["1767323045000000000","line",{"trace_id":"0af7651916cd43dd8448eb211c80319c"}]]}]}`))
	f.Add([]byte(`{"streams":[{"stream":{},"values":[[1,"a"]]},{"values":"x"}]}`))
	d := testDecoder(fuzzOpts)
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := d.Decode(body, "application/json")
		if err != nil {
			return
		}
		checkResult(t, res, len(body))
	})
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{`{job="x", host="y"}`, `{a='\x41'}`, "{a=`b`}", `{a="\u00e9"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseLabels(s)
		if err != nil {
			return
		}
		// What parses must parse again, printed, to the same set.
		again, err := ParseLabels(labelString(ls))
		if err != nil || labelString(again) != labelString(ls) {
			t.Fatalf("%q parsed to %s, which reparses to %v, %v", s, labelString(ls), again, err)
		}
	})
}

// FuzzFastJSONEntry pins that the fast path decodes exactly what
// encoding/json does, whenever it takes an entry.
func FuzzFastJSONEntry(f *testing.F) {
	for _, s := range []string{
		`["1767323045000000000","line"]`, ` [ "1" , "a b" ] `, `["9223372036854775807","x"]`,
		`["9223372036854775808","x"]`, `["1","a\"b"]`, `["1","\u00e9"]`, `["","x"]`, `["1","x",{}]`,
		`["01","x"]`, "[\"1\",\"\xff\"]", `["1","\ud83d\ude00 \ud83d x \ude00\n\/\\"]`, `["1","\ud83d\u0041"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		fast, ok := fastJSONEntry(raw)
		if !ok {
			return
		}
		slow, _, err := jsonEntry(raw)
		if err != nil {
			t.Fatalf("fast path took %q, which jsonEntry refuses: %v", raw, err)
		}
		if !fast.Time.Equal(slow.Time) || fast.Line != slow.Line || len(slow.Metadata) != 0 {
			t.Fatalf("%q: fast %v %q, slow %v %q %v", raw, fast.Time, fast.Line, slow.Time, slow.Line, slow.Metadata)
		}
	})
}
