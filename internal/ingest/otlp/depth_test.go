package otlp

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// deepLogsProto encodes a logs request whose first record's body is an
// array nested levels deep, built inside out in linear time.
func deepLogsProto(levels int) []byte {
	// anyValue[k] = {array_value(5): {values(1): anyValue[k-1]}}
	anyLen := make([]int, levels+1)
	arrLen := make([]int, levels+1)
	for k := 1; k <= levels; k++ {
		arrLen[k] = 1 + protowire.SizeVarint(uint64(anyLen[k-1])) + anyLen[k-1]
		anyLen[k] = 1 + protowire.SizeVarint(uint64(arrLen[k])) + arrLen[k]
	}
	body := make([]byte, 0, anyLen[levels])
	for k := levels; k >= 1; k-- {
		body = protowire.AppendTag(body, 5, protowire.BytesType)
		body = protowire.AppendVarint(body, uint64(arrLen[k]))
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendVarint(body, uint64(anyLen[k-1]))
	}
	wrap := func(field protowire.Number, inner []byte) []byte {
		out := protowire.AppendTag(nil, field, protowire.BytesType)
		return protowire.AppendBytes(out, inner)
	}
	// LogRecord.body(5) < ScopeLogs.log_records(2) < ResourceLogs.scope_logs(2) < request.resource_logs(1)
	return wrap(1, wrap(2, wrap(2, wrap(5, body))))
}

func deepLogsJSON(levels int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1748779200000000000","body":`)
	b.WriteString(strings.Repeat(`{"arrayValue":{"values":[`, levels))
	b.WriteString(`{"stringValue":"x"}`)
	b.WriteString(strings.Repeat(`]}}`, levels))
	b.WriteString(`}]}]}]}`)
	return b.Bytes()
}

func TestNestingLimit(t *testing.T) {
	// A structured body nested 100 values deep, as pdata would send it.
	ld := makeLogs()
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	v := lr.Body()
	for range 100 {
		v = v.SetEmptyMap().PutEmpty("nested\x00\n\"{[")
	}
	v.SetStr(`a "string" with {[ brackets ]} and \ escapes`)
	tests := []struct {
		name string
		body []byte
		enc  wireEncoding
		deep bool
	}{
		{"realistic nesting, protobuf", logsBody(t, ld, encProto), encProto, false},
		{"realistic nesting, JSON", logsBody(t, ld, encJSON), encJSON, false},
		{"deep protobuf", deepLogsProto(maxNesting), encProto, true},
		{"deep JSON", deepLogsJSON(maxNesting), encJSON, true},
		{"brackets inside JSON strings do not count", []byte(`{"x":"` + strings.Repeat("[{", 2*maxNesting) + `"}`), encJSON, false},
		{"garbage is not judged", []byte{0xff, 0x01, 0x02}, encProto, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkNesting(tt.body, tt.enc, logsRequestSchema, nil)
			if got := errors.Is(err, errTooDeep); got != tt.deep {
				t.Errorf("checkNesting = %v, want too deep: %v", err, tt.deep)
			}
		})
	}
}

// TestDeepProtobufDoesNotCrash sends a body (under the default 20 MiB
// limit) nested deep enough that decoding it with pdata would overflow the
// goroutine stack and kill the process.
func TestDeepProtobufDoesNotCrash(t *testing.T) {
	body := deepLogsProto(2_000_000)
	if int64(len(body)) > limits.Defaults().MaxRequestBytes {
		t.Fatalf("body is %d bytes, over the default limit", len(body))
	}
	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 0 // the default
	h := NewHTTPHandler(opts)
	req := httptest.NewRequest(http.MethodPost, PathLogs, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentTypeProto)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
	st := decodeStatus(t, encProto, w.Body.Bytes())
	if !strings.Contains(st.GetMessage(), "deeper than") {
		t.Errorf("message %q", st.GetMessage())
	}
	if len(rec.logs) != 0 {
		t.Errorf("deep body reached the consumer")
	}
}
