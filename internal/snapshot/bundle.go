package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/storage"
)

// maxTraceBytes bounds the traces a bundle holds, OTLP JSON.
const maxTraceBytes = 16 << 20

// maxTraceSpans bounds the spans read of one trace.
const maxTraceSpans = 5000

// readTraces writes traces/index.json (the summaries, error traces first)
// and one traces/<id>.json (OTLP JSON) per trace: the service's traces
// with an error span first, then the latest others, at most
// DefaultMaxTraces and maxTraceBytes.
func readTraces(ctx context.Context, st Traces, service string, from, to time.Time) ([]file, int, error) {
	var found []storage.TraceSummary
	seen := map[string]bool{}
	for _, tags := range []map[string]string{{"error": "true"}, nil} {
		sums, err := st.FindTraces(ctx, storage.TraceQuery{Service: service, Tags: tags, Start: from, End: to, Limit: DefaultMaxTraces})
		if err != nil {
			return nil, 0, err
		}
		for _, s := range sums {
			if id := s.TraceID.String(); !seen[id] && len(found) < DefaultMaxTraces {
				seen[id] = true
				found = append(found, s)
			}
		}
	}
	type summary struct {
		TraceID    string    `json:"traceID"`
		Start      time.Time `json:"start"`
		DurationMS float64   `json:"durationMs"`
		Spans      int       `json:"spans"`
		Errors     int       `json:"errors"`
		Root       string    `json:"root,omitempty"`
	}
	var files []file
	index := make([]summary, 0, len(found))
	var size int
	var marshal ptrace.JSONMarshaler
	// A trace of tens of thousands of spans is read up to a bound, as the
	// trace API reads it.
	readCtx := storage.WithTraceReadLimit(ctx, &storage.TraceReadLimit{MaxSpans: maxTraceSpans})
	for _, s := range found {
		td, err := st.GetTrace(readCtx, s.TraceID)
		if errors.Is(err, storage.ErrTraceNotFound) {
			continue
		}
		if err != nil {
			return files, len(index), err
		}
		b, err := marshal.MarshalTraces(td)
		if err != nil {
			return files, len(index), err
		}
		if size+len(b) > maxTraceBytes {
			break
		}
		size += len(b)
		id := s.TraceID.String()
		files = append(files, file{"traces/" + id + ".json", b})
		index = append(index, summary{id, s.Start, float64(s.Duration) / float64(time.Millisecond), s.SpanCount, s.ErrorCount, s.RootService + " " + s.RootName})
	}
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return files, len(index), err
	}
	return append([]file{{"traces/index.json", append(b, '\n')}}, files...), len(index), nil
}

// logLine is a log record as logs.jsonl holds it.
func logLine(r storage.LogRecord) map[string]any {
	l := map[string]any{
		"time": r.Timestamp, "severity": r.SeverityText, "severity_number": int(r.SeverityNumber),
		"body": r.Body, "service": r.Service,
	}
	if !r.TraceID.IsEmpty() {
		l["trace_id"] = r.TraceID.String()
	}
	if !r.SpanID.IsEmpty() {
		l["span_id"] = r.SpanID.String()
	}
	if len(r.Attributes) > 0 {
		l["attributes"] = r.Attributes
	}
	return l
}

// newID names a bundle: its time, its service and a random suffix, so
// ids sort by time and two captures in one second differ.
func newID(t time.Time, service string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + safeName(service, 0) + "-" + hex.EncodeToString(b[:])
}

// safeName keeps letters, digits, '.', '-' and '_' of s (others become
// '_'), at most 64 bytes; an empty result is the index i.
func safeName(s string, i int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 || strings.Trim(b.String(), ".") == "" {
		return fmt.Sprintf("instance-%d", i)
	}
	return b.String()
}

func writeTarGz(w io.Writer, files []file, now time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar header %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("tar data %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// readTarGz unpacks an instance's archive: regular files only, their
// names flattened to a safe base name, at most max bytes in all.
func readTarGz(body []byte, max int64) ([]file, error) {
	gz, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	var files []file
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the tar archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, max-total+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
		}
		total += int64(len(data))
		if total > max {
			return nil, fmt.Errorf("archive unpacks to more than %d bytes", max)
		}
		files = append(files, file{safeName(path.Base(hdr.Name), len(files)), data})
	}
	if len(files) == 0 {
		return nil, errors.New("empty archive")
	}
	return files, nil
}
