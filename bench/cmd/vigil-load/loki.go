package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/golang/snappy"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// lokiPushBody encodes ld as the body of a Loki push request
// (logproto.PushRequest, snappy block-compressed) the way Loki's own OTLP
// ingestion maps a record: each resource is one stream whose labels are
// its attributes with every '.' made '_' (service.name becomes
// service_name), the body is the line, and the record's severity, trace
// and span ids and attributes are structured metadata, again with '_' for
// '.'. So the same records reach every log store, whichever API it takes.
func lokiPushBody(ld plog.Logs) []byte {
	var req []byte
	for _, rl := range ld.ResourceLogs().All() {
		var stream []byte
		stream = protowire.AppendTag(stream, 1, protowire.BytesType)
		stream = protowire.AppendString(stream, lokiLabels(rl.Resource().Attributes()))
		for _, sl := range rl.ScopeLogs().All() {
			for _, r := range sl.LogRecords().All() {
				stream = protowire.AppendTag(stream, 2, protowire.BytesType)
				stream = protowire.AppendBytes(stream, lokiEntry(r))
			}
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, stream)
	}
	return snappy.Encode(nil, req)
}

// lokiLabels writes attrs as a Loki label set, {a="x", b="y"}, sorted by name.
func lokiLabels(attrs pcommon.Map) string {
	type kv struct{ k, v string }
	var ls []kv
	for k, v := range attrs.All() {
		ls = append(ls, kv{lokiName(k), v.AsString()})
	}
	slices.SortFunc(ls, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.v))
	}
	b.WriteByte('}')
	return b.String()
}

func lokiEntry(r plog.LogRecord) []byte {
	ts := r.Timestamp().AsTime()
	var tsMsg []byte
	tsMsg = protowire.AppendTag(tsMsg, 1, protowire.VarintType)
	tsMsg = protowire.AppendVarint(tsMsg, uint64(ts.Unix()))
	tsMsg = protowire.AppendTag(tsMsg, 2, protowire.VarintType)
	tsMsg = protowire.AppendVarint(tsMsg, uint64(ts.Nanosecond()))
	var e []byte
	e = protowire.AppendTag(e, 1, protowire.BytesType)
	e = protowire.AppendBytes(e, tsMsg)
	e = protowire.AppendTag(e, 2, protowire.BytesType)
	e = protowire.AppendString(e, r.Body().AsString())
	pair := func(name, value string) {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, name)
		p = protowire.AppendTag(p, 2, protowire.BytesType)
		p = protowire.AppendString(p, value)
		e = protowire.AppendTag(e, 3, protowire.BytesType)
		e = protowire.AppendBytes(e, p)
	}
	if s := r.SeverityText(); s != "" {
		pair("level", strings.ToLower(s))
	}
	if id := r.TraceID(); !id.IsEmpty() {
		pair("trace_id", id.String())
	}
	if id := r.SpanID(); !id.IsEmpty() {
		pair("span_id", id.String())
	}
	for k, v := range r.Attributes().All() {
		pair(lokiName(k), v.AsString())
	}
	return e
}

// lokiName makes an attribute name a label name, as Loki does.
func lokiName(k string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, k)
}

// postLoki sends ld to a Loki push URL; Loki answers 204, vigil and
// VictoriaLogs 204 or 200, and any of them is an acknowledgement.
func postLoki(ctx context.Context, c *http.Client, url string, ld plog.Logs) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(lokiPushBody(ld)))
	if err != nil {
		return err
	}
	// Snappy is part of the format, not a Content-Encoding.
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return &loadgen.StatusError{Code: resp.StatusCode, Body: string(msg), RetryAfter: resp.Header.Get("Retry-After")}
	}
	return nil
}
