// Package attrenc encodes pdata attribute maps, span events and span links
// as compact "typed JSON" text, and decodes them back exactly. The embedded
// (DuckDB) and ClickHouse backends store attributes in this one format, so
// that a value written through either reads back with its pdata type.
package attrenc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Attribute maps are stored as compact "typed JSON": valid JSON, so that
// DuckDB's json functions can query it (attributes->>'$."http.route"'), in
// which every pdata value type survives a round trip exactly:
//
//	string -> "text"        int   -> 42            double -> 2.0, 1e-300 (always a '.' or exponent)
//	bool   -> true/false    empty -> null          slice  -> [ ... ]      map -> { ... }
//
// Values JSON cannot hold are strings starting with a NUL Tag character,
// which no sensible attribute starts with:
//
//	"\u0000b<base64>"  bytes
//	"\u0000d<NaN|+Inf|-Inf>"  non-finite double
//	"\u0000u<base64>"  string that is not valid UTF-8 (kept byte for byte)
//	"\u0000s<rest>"    a real string that began with NUL
//
// Key order is kept. An empty map encodes as "" to save space.
// Tag starts the strings that stand for values JSON cannot hold.
const Tag = '\x00'

// AppendMap appends the typed JSON of m, or nothing for an empty map. skip,
// when non-nil, leaves out keys it reports true for; the caller keeps those
// in dedicated columns.
func AppendMap(b []byte, m pcommon.Map, skip func(k string, v pcommon.Value) bool) []byte {
	start := len(b)
	b = AppendObject(b, m, skip)
	if len(b)-start == 2 { // "{}"
		return b[:start]
	}
	return b
}

// AppendObject appends m as a JSON object, "{}" when empty.
func AppendObject(b []byte, m pcommon.Map, skip func(k string, v pcommon.Value) bool) []byte {
	b = append(b, '{')
	n := 0
	for k, v := range m.All() {
		if skip != nil && skip(k, v) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendValue(b, v)
	}
	return append(b, '}')
}

func AppendValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return AppendString(b, v.Str())
	case pcommon.ValueTypeInt:
		return strconv.AppendInt(b, v.Int(), 10)
	case pcommon.ValueTypeDouble:
		return appendDouble(b, v.Double())
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(b, v.Bool())
	case pcommon.ValueTypeBytes:
		return appendTagged(b, 'b', v.Bytes().AsRaw())
	case pcommon.ValueTypeSlice:
		b = append(b, '[')
		for i, e := range v.Slice().All() {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendValue(b, e)
		}
		return append(b, ']')
	case pcommon.ValueTypeMap:
		return AppendObject(b, v.Map(), nil)
	default:
		return append(b, "null"...)
	}
}

func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"\u0000dNaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"\u0000d+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"\u0000d-Inf"`...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	for _, c := range b[start:] {
		if c == '.' || c == 'e' {
			return b
		}
	}
	return append(b, ".0"...)
}

// appendTagged appends "\u0000<kind><base64 of raw>".
func appendTagged(b []byte, kind byte, raw []byte) []byte {
	b = append(b, `"\u0000`...)
	b = append(b, kind)
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

// AppendString appends s as a JSON string, escaping only what JSON requires
// so that non-ASCII text stays readable and short.
func AppendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		return appendTagged(b, 'u', []byte(s))
	}
	b = append(b, '"')
	if len(s) > 0 && s[0] == Tag {
		b = append(b, `\u0000s`...)
		s = s[1:]
	}
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		last = i + 1
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

// ErrBadJSON marks stored attribute text that does not decode; it means
// the file was damaged or written by something else.
var ErrBadJSON = errors.New("attrenc: malformed stored attributes")

// DecodeMap fills dst (which should be empty) from typed JSON written by
// AppendMap.
func DecodeMap(src string, dst pcommon.Map) error {
	if src == "" {
		return nil
	}
	v := pcommon.NewValueEmpty()
	if err := DecodeValue(src, v); err != nil {
		return err
	}
	if v.Type() != pcommon.ValueTypeMap {
		return fmt.Errorf("%w: want an object, got %s", ErrBadJSON, v.Type())
	}
	v.Map().MoveTo(dst)
	return nil
}

// DecodeValue sets v from one typed JSON value.
func DecodeValue(src string, v pcommon.Value) error {
	d := decoder{s: src}
	if err := d.value(v); err != nil {
		return err
	}
	d.space()
	if d.i != len(d.s) {
		return d.fail("trailing data")
	}
	return nil
}

// decoder is a small order-preserving JSON parser producing pcommon values.
type decoder struct {
	s string
	i int
}

func (d *decoder) fail(msg string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrBadJSON, msg, d.i)
}

func (d *decoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object parses the members after '{' through the closing '}'.
func (d *decoder) object(m pcommon.Map) error {
	d.space()
	if d.eat('}') {
		return nil
	}
	for {
		d.space()
		k, err := d.str()
		if err != nil {
			return err
		}
		if len(k) >= 2 && k[0] == Tag {
			// Keys are strings too and get the same tags.
			kv := pcommon.NewValueEmpty()
			if err := setTaggedString(kv, k); err != nil {
				return err
			}
			k = kv.AsString()
		}
		d.space()
		if !d.eat(':') {
			return d.fail("expected ':'")
		}
		if err := d.value(m.PutEmpty(k)); err != nil {
			return err
		}
		d.space()
		if d.eat('}') {
			return nil
		}
		if !d.eat(',') {
			return d.fail("expected ',' or '}'")
		}
	}
}

func (d *decoder) array(s pcommon.Slice) error {
	d.space()
	if d.eat(']') {
		return nil
	}
	for {
		if err := d.value(s.AppendEmpty()); err != nil {
			return err
		}
		d.space()
		if d.eat(']') {
			return nil
		}
		if !d.eat(',') {
			return d.fail("expected ',' or ']'")
		}
	}
}

func (d *decoder) value(v pcommon.Value) error {
	d.space()
	if d.i >= len(d.s) {
		return d.fail("unexpected end")
	}
	switch c := d.s[d.i]; {
	case c == '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		return setTaggedString(v, s)
	case c == '{':
		d.i++
		return d.object(v.SetEmptyMap())
	case c == '[':
		d.i++
		return d.array(v.SetEmptySlice())
	case c == 't' && d.lit("true"):
		v.SetBool(true)
	case c == 'f' && d.lit("false"):
		v.SetBool(false)
	case c == 'n' && d.lit("null"):
		// Empty value: nothing to set.
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number(v)
	default:
		return d.fail("unexpected character")
	}
	return nil
}

func (d *decoder) lit(w string) bool {
	if len(d.s)-d.i >= len(w) && d.s[d.i:d.i+len(w)] == w {
		d.i += len(w)
		return true
	}
	return false
}

func (d *decoder) number(v pcommon.Value) error {
	start := d.i
	isFloat := false
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '.' || c == 'e' || c == 'E' {
			isFloat = true
		} else if !(c == '-' || c == '+' || ('0' <= c && c <= '9')) {
			break
		}
		d.i++
	}
	lit := d.s[start:d.i]
	if !isFloat {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err == nil {
			v.SetInt(n)
			return nil
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return d.fail("bad number " + strconv.Quote(lit))
	}
	v.SetDouble(f)
	return nil
}

// str parses a JSON string starting at '"' and returns it unescaped.
func (d *decoder) str() (string, error) {
	if !d.eat('"') {
		return "", d.fail("expected string")
	}
	start := d.i
	// Fast path: no escapes.
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			s := d.s[start:d.i]
			d.i++
			return s, nil
		}
		if c == '\\' {
			break
		}
		d.i++
	}
	buf := []byte(d.s[start:d.i])
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), nil
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.s) {
			break
		}
		e := d.s[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.fail("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if d.lit(`\u`) {
					if r2, ok := d.hex4(); ok {
						r = utf16.DecodeRune(r, r2)
					} else {
						return "", d.fail("bad \\u escape")
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", d.fail("bad escape")
		}
	}
	return "", d.fail("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.s)-d.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(d.s[d.i:d.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// setTaggedString sets v from a decoded JSON string, resolving the NUL tags
// that AppendValue writes for values JSON cannot hold.
func setTaggedString(v pcommon.Value, s string) error {
	if len(s) < 2 || s[0] != Tag {
		v.SetStr(s)
		return nil
	}
	body := s[2:]
	switch s[1] {
	case 's':
		v.SetStr(string(Tag) + body)
	case 'b', 'u':
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return fmt.Errorf("%w: bad base64: %w", ErrBadJSON, err)
		}
		if s[1] == 'b' {
			v.SetEmptyBytes().FromRaw(raw)
		} else {
			v.SetStr(string(raw))
		}
	case 'd':
		switch body {
		case "NaN":
			v.SetDouble(math.NaN())
		case "+Inf":
			v.SetDouble(math.Inf(1))
		case "-Inf":
			v.SetDouble(math.Inf(-1))
		default:
			return fmt.Errorf("%w: bad tagged double %q", ErrBadJSON, body)
		}
	default:
		v.SetStr(s)
	}
	return nil
}

// AppendEvents writes [[time - span start, name, {attrs}, dropped], ...], or
// nothing when there are no events.
func AppendEvents(b []byte, evs ptrace.SpanEventSlice, start pcommon.Timestamp) []byte {
	if evs.Len() == 0 {
		return b
	}
	b = append(b, '[')
	for i, e := range evs.All() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendInt(b, int64(e.Timestamp()-start))
		b = append(b, ',')
		b = AppendString(b, e.Name())
		b = append(b, ',')
		b = AppendObject(b, e.Attributes(), nil)
		b = append(b, ',')
		b = appendInt(b, int64(e.DroppedAttributesCount()))
		b = append(b, ']')
	}
	return append(b, ']')
}

// AppendLinks writes [[trace hex, span hex, trace state, flags, {attrs}, dropped], ...].
func AppendLinks(b []byte, links ptrace.SpanLinkSlice) []byte {
	if links.Len() == 0 {
		return b
	}
	b = append(b, '[')
	for i, l := range links.All() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[', '"')
		tid, sid := l.TraceID(), l.SpanID()
		b = hexAppend(b, tid[:])
		b = append(b, '"', ',', '"')
		b = hexAppend(b, sid[:])
		b = append(b, '"', ',')
		b = AppendString(b, l.TraceState().AsRaw())
		b = append(b, ',')
		b = appendInt(b, int64(l.Flags()))
		b = append(b, ',')
		b = AppendObject(b, l.Attributes(), nil)
		b = append(b, ',')
		b = appendInt(b, int64(l.DroppedAttributesCount()))
		b = append(b, ']')
	}
	return append(b, ']')
}

func DecodeEvents(src string, sp ptrace.Span) error {
	if src == "" {
		return nil
	}
	v := pcommon.NewValueEmpty()
	if err := DecodeValue(src, v); err != nil {
		return fmt.Errorf("attrenc: events: %w", err)
	}
	if v.Type() != pcommon.ValueTypeSlice {
		return fmt.Errorf("attrenc: events: %w: not an array", ErrBadJSON)
	}
	evs := sp.Events()
	evs.EnsureCapacity(v.Slice().Len())
	for _, ev := range v.Slice().All() {
		f, ok := tuple(ev, pcommon.ValueTypeInt, pcommon.ValueTypeStr, pcommon.ValueTypeMap, pcommon.ValueTypeInt)
		if !ok {
			return fmt.Errorf("attrenc: events: %w: bad event", ErrBadJSON)
		}
		e := evs.AppendEmpty()
		e.SetTimestamp(sp.StartTimestamp() + pcommon.Timestamp(f.At(0).Int()))
		e.SetName(f.At(1).Str())
		f.At(2).Map().MoveTo(e.Attributes())
		e.SetDroppedAttributesCount(uint32(f.At(3).Int()))
	}
	return nil
}

func DecodeLinks(src string, sp ptrace.Span) error {
	if src == "" {
		return nil
	}
	v := pcommon.NewValueEmpty()
	if err := DecodeValue(src, v); err != nil {
		return fmt.Errorf("attrenc: links: %w", err)
	}
	if v.Type() != pcommon.ValueTypeSlice {
		return fmt.Errorf("attrenc: links: %w: not an array", ErrBadJSON)
	}
	links := sp.Links()
	links.EnsureCapacity(v.Slice().Len())
	for _, lv := range v.Slice().All() {
		f, ok := tuple(lv, pcommon.ValueTypeStr, pcommon.ValueTypeStr, pcommon.ValueTypeStr,
			pcommon.ValueTypeInt, pcommon.ValueTypeMap, pcommon.ValueTypeInt)
		if !ok {
			return fmt.Errorf("attrenc: links: %w: bad link", ErrBadJSON)
		}
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		if !unhex(f.At(0).Str(), tid[:]) || !unhex(f.At(1).Str(), sid[:]) {
			return fmt.Errorf("attrenc: links: %w: bad id", ErrBadJSON)
		}
		l := links.AppendEmpty()
		l.SetTraceID(tid)
		l.SetSpanID(sid)
		l.TraceState().FromRaw(f.At(2).Str())
		l.SetFlags(uint32(f.At(3).Int()))
		f.At(4).Map().MoveTo(l.Attributes())
		l.SetDroppedAttributesCount(uint32(f.At(5).Int()))
	}
	return nil
}

// tuple checks that v is an array whose elements have the given types.
func tuple(v pcommon.Value, types ...pcommon.ValueType) (pcommon.Slice, bool) {
	if v.Type() != pcommon.ValueTypeSlice || v.Slice().Len() != len(types) {
		return pcommon.Slice{}, false
	}
	s := v.Slice()
	for i, t := range types {
		if s.At(i).Type() != t {
			return pcommon.Slice{}, false
		}
	}
	return s, true
}

func unhex(s string, dst []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		h, ok1 := fromHex(s[2*i])
		l, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = h<<4 | l
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func hexAppend(b []byte, src []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range src {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }
