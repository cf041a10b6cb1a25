package embedded

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Attribute maps are stored as compact "typed JSON": valid JSON, so that
// DuckDB's json functions can query it (attributes->>'$."http.route"'), in
// which every pdata value type survives a round trip exactly:
//
//	string -> "text"        int   -> 42            double -> 2.0, 1e-300 (always a '.' or exponent)
//	bool   -> true/false    empty -> null          slice  -> [ ... ]      map -> { ... }
//
// Values JSON cannot hold are strings starting with a NUL tag character,
// which no sensible attribute starts with:
//
//	"\u0000b<base64>"  bytes
//	"\u0000d<NaN|+Inf|-Inf>"  non-finite double
//	"\u0000u<base64>"  string that is not valid UTF-8 (kept byte for byte)
//	"\u0000s<rest>"    a real string that began with NUL
//
// Key order is kept. An empty map encodes as "" to save space.
const tag = '\x00'

// appendMap appends the typed JSON of m, or nothing for an empty map. skip,
// when non-nil, leaves out keys it reports true for; the caller keeps those
// in dedicated columns.
func appendMap(b []byte, m pcommon.Map, skip func(k string, v pcommon.Value) bool) []byte {
	start := len(b)
	b = appendObject(b, m, skip)
	if len(b)-start == 2 { // "{}"
		return b[:start]
	}
	return b
}

// appendObject appends m as a JSON object, "{}" when empty.
func appendObject(b []byte, m pcommon.Map, skip func(k string, v pcommon.Value) bool) []byte {
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
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, v)
	}
	return append(b, '}')
}

func appendValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return appendString(b, v.Str())
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
			b = appendValue(b, e)
		}
		return append(b, ']')
	case pcommon.ValueTypeMap:
		return appendObject(b, v.Map(), nil)
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

// appendString appends s as a JSON string, escaping only what JSON requires
// so that non-ASCII text stays readable and short.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		return appendTagged(b, 'u', []byte(s))
	}
	b = append(b, '"')
	if len(s) > 0 && s[0] == tag {
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

// errBadJSON marks stored attribute text that does not decode; it means
// the file was damaged or written by something else.
var errBadJSON = errors.New("embedded: malformed stored attributes")

// decodeMap fills dst (which should be empty) from typed JSON written by
// appendMap.
func decodeMap(src string, dst pcommon.Map) error {
	if src == "" {
		return nil
	}
	v := pcommon.NewValueEmpty()
	if err := decodeValue(src, v); err != nil {
		return err
	}
	if v.Type() != pcommon.ValueTypeMap {
		return fmt.Errorf("%w: want an object, got %s", errBadJSON, v.Type())
	}
	v.Map().MoveTo(dst)
	return nil
}

// decodeValue sets v from one typed JSON value.
func decodeValue(src string, v pcommon.Value) error {
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
	return fmt.Errorf("%w: %s at offset %d", errBadJSON, msg, d.i)
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
		if len(k) >= 2 && k[0] == tag {
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
// that appendValue writes for values JSON cannot hold.
func setTaggedString(v pcommon.Value, s string) error {
	if len(s) < 2 || s[0] != tag {
		v.SetStr(s)
		return nil
	}
	body := s[2:]
	switch s[1] {
	case 's':
		v.SetStr(string(tag) + body)
	case 'b', 'u':
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return fmt.Errorf("%w: bad base64: %w", errBadJSON, err)
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
			return fmt.Errorf("%w: bad tagged double %q", errBadJSON, body)
		}
	default:
		v.SetStr(s)
	}
	return nil
}
