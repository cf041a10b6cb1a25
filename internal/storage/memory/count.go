package memory

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

var _ storage.LogCounter = (*Store)(nil)

// countKey is one LogCount's identity; attrs joins the attribute values
// with a NUL, which typed JSON never holds unescaped.
type countKey struct {
	stream  string
	bin     int64
	sev     storage.Severity
	sevText string
	attrs   string
}

// CountLogs counts the records q selects in one pass over them. A value
// that is a map with several keys comes out in the order Go's map gives,
// since the store keeps attributes as raw Go values, not as written.
func (s *Store) CountLogs(ctx context.Context, q storage.LogCountQuery) ([]storage.LogCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Step <= 0 {
		return nil, fmt.Errorf("%w: count step must be positive", storage.ErrInvalidQuery)
	}
	if err := checkStreamKeys(q.Streams); err != nil {
		return nil, err
	}
	if len(q.Streams) == 0 {
		return nil, nil
	}
	streams := make(map[string]bool, len(q.Streams))
	for _, k := range q.Streams {
		streams[k] = true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	counts := map[countKey]*storage.LogCount{}
	origin, step := q.Origin.UnixNano(), q.Step.Nanoseconds()
	var buf []byte
	for i := range s.logs {
		e := &s.logs[i]
		r := &e.record
		ts := e.at.UnixNano()
		if !streams[e.stream] || !e.at.After(q.Start) || e.at.After(q.End) ||
			!containsEvery(r.Body, q.Contains) || containsAny(r.Body, q.NotContains) {
			continue
		}
		k := countKey{stream: e.stream, bin: floorDiv(ts-origin-1, step), sev: storage.SeverityOf(r.SeverityNumber)}
		if k.sev == storage.SeverityUnset {
			k.sevText = r.SeverityText
		}
		buf = buf[:0]
		for j, a := range q.Attributes {
			if j > 0 {
				buf = append(buf, 0)
			}
			if raw, ok := r.Attributes[a]; ok {
				v := pcommon.NewValueEmpty()
				if err := v.FromRaw(raw); err != nil {
					return nil, fmt.Errorf("memory: attribute %q: %w", a, err)
				}
				buf = attrenc.AppendValue(buf, v)
			}
		}
		k.attrs = string(buf)
		c := counts[k]
		if c == nil {
			c = &storage.LogCount{Stream: k.stream, Bin: k.bin, Severity: k.sev, SeverityText: k.sevText}
			if len(q.Attributes) > 0 {
				c.Attributes = strings.Split(k.attrs, "\x00")
			}
			counts[k] = c
		}
		c.Entries++
		c.Bytes += int64(len(r.Body))
	}
	out := make([]storage.LogCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	return out, nil
}

func containsEvery(s string, subs []string) bool {
	for _, t := range subs {
		if !strings.Contains(s, t) {
			return false
		}
	}
	return true
}

func containsAny(s string, subs []string) bool {
	for _, t := range subs {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// floorDiv divides rounding down, as the SQL stores do, so that records
// before Origin (there are some only when a query puts Origin after Start,
// against LogCountQuery's rule) fall in negative bins rather than bin 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
