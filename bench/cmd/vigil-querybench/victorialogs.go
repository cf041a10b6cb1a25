package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// vlStreamFields are the fields VictoriaLogs groups log streams by: the
// resource attributes, as a Loki agent's labels would be. service_name is
// also the label vigil's Loki API answers {service_name="..."} with, so the
// same selector reads the same lines in both.
const vlStreamFields = "service_name,host_name"

// vlSink sends gen's log batches to VictoriaLogs as JSON lines, in the
// background so that writing vigil's stores and VictoriaLogs' overlap. The
// channel is small: gen slows to the slower of the two rather than holding
// batches in memory.
type vlSink struct {
	base   string
	client *http.Client
	in     chan plog.Logs
	done   chan error
	sent   int64
	busy   time.Duration
}

func newVLSink(base string) *vlSink {
	s := &vlSink{base: base, client: &http.Client{Timeout: 5 * time.Minute},
		in: make(chan plog.Logs, 4), done: make(chan error, 1)}
	go s.loop()
	return s
}

func (s *vlSink) loop() {
	var err error
	var buf bytes.Buffer
	for ld := range s.in {
		if err != nil {
			continue // drain; the first error is reported
		}
		t0 := time.Now()
		buf.Reset()
		n := appendJSONLines(&buf, ld)
		if err = s.post(&buf); err == nil {
			s.sent += int64(n)
		}
		s.busy += time.Since(t0)
	}
	s.done <- err
}

func (s *vlSink) post(body *bytes.Buffer) error {
	v := url.Values{"_stream_fields": {vlStreamFields}, "_time_field": {"_time"}, "_msg_field": {"_msg"}}
	resp, err := s.client.Post(s.base+"/insert/jsonline?"+v.Encode(), "application/stream+json", body)
	if err != nil {
		return fmt.Errorf("victorialogs: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("victorialogs: /insert/jsonline: HTTP %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// close waits for the batches sent so far, then asks VictoriaLogs to make
// them searchable and durable (/internal/force_flush), so that what the
// queries and the disk usage see is all of them.
func (s *vlSink) close(ctx context.Context) error {
	close(s.in)
	if err := <-s.done; err != nil {
		return err
	}
	if _, err := get(ctx, s.client, s.base+"/internal/force_flush"); err != nil {
		return fmt.Errorf("victorialogs: %w", err)
	}
	return nil
}

// appendJSONLines writes one JSON object per log record of ld: the body as
// _msg, the timestamp to the nanosecond, the resource attributes as stream
// fields and the rest as plain fields, and returns how many it wrote.
func appendJSONLines(w *bytes.Buffer, ld plog.Logs) int {
	n := 0
	row := map[string]string{}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	rls := ld.ResourceLogs()
	for i := range rls.Len() {
		rl := rls.At(i)
		res := map[string]string{}
		rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			res[lokiLabel(k)] = v.AsString()
			return true
		})
		sls := rl.ScopeLogs()
		for j := range sls.Len() {
			recs := sls.At(j).LogRecords()
			for k := range recs.Len() {
				r := recs.At(k)
				clear(row)
				for k, v := range res {
					row[k] = v
				}
				row["_time"] = r.Timestamp().AsTime().UTC().Format(time.RFC3339Nano)
				row["_msg"] = r.Body().AsString()
				row["severity_text"] = r.SeverityText()
				if !r.TraceID().IsEmpty() {
					row["trace_id"] = r.TraceID().String()
					row["span_id"] = r.SpanID().String()
				}
				r.Attributes().Range(func(k string, v pcommon.Value) bool {
					row[k] = v.AsString()
					return true
				})
				_ = enc.Encode(row) // a map of strings always encodes
				n++
			}
		}
	}
	return n
}

// lokiLabel is the label a Loki agent gives a resource attribute:
// service.name becomes service_name.
func lokiLabel(k string) string {
	b := []byte(k)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}
