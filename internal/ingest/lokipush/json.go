package lokipush

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
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
		e, ok := fastJSONEntry(v)
		var reason Reason
		var err error
		if !ok {
			e, reason, err = jsonEntry(v)
		}
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

// fastJSONEntry decodes the common shape ["<unix ns>", "<line>"], with no
// escapes in the line, without reflection: it is most of what JSON clients
// send, and encoding/json costs several allocations per entry. It reports
// false for anything else, which jsonEntry then decodes. raw has been
// validated as JSON by the decoding of its stream, so a line without
// backslashes is its bytes as they stand.
func fastJSONEntry(raw []byte) (Entry, bool) {
	var e Entry
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return e, false
	}
	i = skipSpace(raw, i+1)
	if i >= len(raw) || raw[i] != '"' {
		return e, false
	}
	i++
	var ns int64
	start := i
	for ; i < len(raw) && '0' <= raw[i] && raw[i] <= '9'; i++ {
		d := int64(raw[i] - '0')
		if ns > (math.MaxInt64-d)/10 {
			return e, false // overflow: ParseInt words the error
		}
		ns = ns*10 + d
	}
	if i == start || i >= len(raw) || raw[i] != '"' {
		return e, false
	}
	i = skipSpace(raw, i+1)
	if i >= len(raw) || raw[i] != ',' {
		return e, false
	}
	i = skipSpace(raw, i+1)
	if i >= len(raw) || raw[i] != '"' {
		return e, false
	}
	i++
	start = i
	escaped := false
	for ; i < len(raw) && raw[i] != '"'; i++ {
		if raw[i] == '\\' {
			escaped = true
			i++
		}
	}
	if i >= len(raw) {
		return e, false
	}
	line := raw[start:i]
	if !utf8.Valid(line) {
		return e, false // encoding/json's repair, not ours, as on the slow path
	}
	i = skipSpace(raw, i+1)
	if i >= len(raw) || raw[i] != ']' || skipSpace(raw, i+1) != len(raw) {
		return e, false
	}
	e.Time = time.Unix(0, ns).UTC()
	if escaped {
		e.Line = unescapeJSON(line)
	} else {
		e.Line = string(line)
	}
	return e, true
}

// unescapeJSON undoes the escapes of the inside of a valid JSON string, as
// encoding/json does: a surrogate pair makes one rune, a lone surrogate
// becomes U+FFFD.
func unescapeJSON(s []byte) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(s[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hex4(s[i+3 : i+7])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, s[i])
		}
	}
	return string(b)
}

// hex4 reads four hex digits, which a valid JSON \u escape has.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
