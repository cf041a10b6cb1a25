package lokipush

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

type jsonPush struct {
	Streams []json.RawMessage `json:"streams"`
}

type jsonStream struct {
	Stream map[string]string `json:"stream"`
	Values []json.RawMessage `json:"values"`
}

func (d *Decoder) decodeJSON(body []byte) (*Result, error) {
	if max := d.opts.MaxDecodedBytes; max > 0 && len(body) > max {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(body), max)
	}
	var req jsonPush
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	b := d.newBatch()
	for i, raw := range req.Streams {
		b.jsonStream(i, raw)
	}
	return b.res, nil
}

// jsonStream decodes one stream on its own, so that a malformed stream
// costs only its own entries.
func (b *batch) jsonStream(i int, raw json.RawMessage) {
	var js jsonStream
	if err := json.Unmarshal(raw, &js); err != nil {
		b.res.reject(ReasonMalformed, 1, "stream #%d: %v", i, err)
		return
	}
	ls := make([]Label, 0, len(js.Stream))
	for name, value := range js.Stream {
		if value != "" { // as in ParseLabels: empty is absent
			ls = append(ls, Label{Name: name, Value: value})
		}
	}
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	desc := labelString(ls)
	if err := checkLabelSet(ls); err != nil {
		b.res.reject(ReasonBadLabels, len(js.Values), "stream %s: %v", desc, fmt.Errorf("%w: %w", ErrBadLabels, err))
		return
	}
	ls, reason, err := b.checkLabels(ls)
	if err != nil {
		b.res.reject(reason, len(js.Values), "stream %s: %v", desc, err)
		return
	}
	s := Stream{Labels: ls, Entries: make([]Entry, 0, min(len(js.Values), max(b.d.opts.MaxEntries-b.res.Entries, 0)))}
	for _, v := range js.Values {
		e, reason, err := jsonEntry(v)
		if err != nil {
			b.res.reject(reason, 1, "stream %s: entry: %v", desc, err)
			continue
		}
		if b.keep(desc, &e) {
			s.Entries = append(s.Entries, e)
		}
	}
	if len(s.Entries) > 0 {
		b.res.Streams = append(b.res.Streams, s)
	}
}

// jsonEntry decodes ["<unix ns>", "<line>"] or ["<unix ns>", "<line>",
// {"name": "value"}]. The timestamp is a string in Loki's format; a bare
// integer is taken too since some hand-written clients send one.
func jsonEntry(raw json.RawMessage) (Entry, Reason, error) {
	var e Entry
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return e, ReasonMalformed, err
	}
	if len(parts) != 2 && len(parts) != 3 {
		return e, ReasonMalformed, fmt.Errorf("entry has %d elements, want 2 or 3", len(parts))
	}
	ts := string(parts[0])
	if strings.HasPrefix(ts, `"`) {
		if err := json.Unmarshal(parts[0], &ts); err != nil {
			return e, ReasonBadTimestamp, err
		}
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return e, ReasonBadTimestamp, fmt.Errorf("timestamp %q is not Unix nanoseconds", ts)
	}
	e.Time = time.Unix(0, ns).UTC()
	if err := json.Unmarshal(parts[1], &e.Line); err != nil {
		return e, ReasonMalformed, fmt.Errorf("line: %w", err)
	}
	if len(parts) == 3 {
		var md map[string]string
		if err := json.Unmarshal(parts[2], &md); err != nil {
			return e, ReasonMalformed, fmt.Errorf("structured metadata: %w", err)
		}
		// A map has no order: sorting keeps the output deterministic.
		for name, value := range md {
			e.Metadata = append(e.Metadata, Label{Name: name, Value: value})
		}
		slices.SortFunc(e.Metadata, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	}
	return e, "", nil
}

// checkLabelSet applies ParseLabels's rules to a label set that came as a
// JSON object.
func checkLabelSet(ls []Label) error {
	if len(ls) == 0 {
		return errNoLabels
	}
	for _, l := range ls {
		if !validLabelName(l.Name) {
			return fmt.Errorf("invalid label name %q", l.Name)
		}
	}
	return nil
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// labelString prints a label set in selector syntax, for messages and
// golden files.
func labelString(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}
