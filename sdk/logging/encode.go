package logging

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The encoder below appends JSON directly to a pooled byte slice. It produces
// exactly what slog's JSONHandler produced when the handler delegated to it
// (same key order, escaping, number formats and error texts), so that logs
// and golden files do not change; it exists because delegation cost a second
// slog.Record, a nested-group allocation per record and slog's generic
// handler state, which together made the handler several times slower than
// zap. Comments note where slog's behaviour is reproduced on purpose.

// maxPooledBuffer keeps one huge record from pinning a large buffer in the
// pool for the life of the process.
const maxPooledBuffer = 16 << 10

var bufferPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}

// appendSep appends the comma that separates object members unless b ends
// an object opening. Every object the encoder writes starts with '{' in the
// same buffer, so the last byte tells whether a member precedes.
func appendSep(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return b
}

// appendKey appends a member's separator, quoted key and colon.
func appendKey(b []byte, key string) []byte {
	b = appendSep(b)
	b = appendString(b, key)
	return append(b, ':')
}

// appendString appends s as a quoted JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped escapes s as encoding/json does with HTML escaping turned
// off (slog's setting): '"', '\\' and control characters are escaped, invalid
// UTF-8 becomes \ufffd, U+2028 and U+2029 are escaped for JSONP safety, and
// '<', '>' and '&' are left alone.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
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
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendTime appends t as a quoted RFC 3339 timestamp with nanoseconds, as
// time.Time.MarshalJSON and slog do. slog reports years outside 0–9999 by
// writing an error string and then the time anyway, which yields invalid
// JSON; the encoder writes just the formatted time, still a valid string.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendError writes an encoding failure in place of the value, as slog does
// ("!ERROR:" and the error text), so one bad attribute never loses a record.
func appendError(b []byte, err error) []byte {
	return appendString(b, "!ERROR:"+err.Error())
}

// appendFloat formats f as encoding/json does (which slog calls for floats):
// the shortest representation, in exponent form only for very small or very
// large magnitudes, with a two-digit negative exponent trimmed ("1e-7", not
// "1e-07"). NaN and infinities are not JSON numbers; encoding/json fails on
// them and slog writes the failure as a string.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendString(b, "!ERROR:json: unsupported value: "+strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendAttr appends a as an object member; nothing is written for an
// attribute slog would elide (empty key and nil value) or for a group that
// ends up with no members. Values are resolved here because redaction only
// resolves the attributes it rewrites.
func appendAttr(b []byte, a slog.Attr) []byte {
	v := a.Value
	kind := v.Kind()
	if kind == slog.KindLogValuer {
		// Resolve guards against panicking LogValue methods with a
		// deferred recover, which costs enough to skip for plain values.
		v = v.Resolve()
		kind = v.Kind()
	}
	if kind == slog.KindAny {
		switch x := v.Any().(type) {
		case nil:
			if a.Key == "" {
				return b
			}
		case *slog.Source:
			// slog writes a Source value as a group of its non-zero
			// fields and drops it when all are zero.
			if x == nil || *x == (slog.Source{}) {
				return b
			}
			v, kind = sourceGroup(x), slog.KindGroup
		}
	}
	if kind != slog.KindGroup {
		b = appendKey(b, a.Key)
		return appendValue(b, v, kind)
	}
	members := v.Group()
	if a.Key == "" { // inlined, as slog does with a group without a name
		for _, m := range members {
			b = appendAttr(b, m)
		}
		return b
	}
	start := len(b)
	b = appendKey(b, a.Key)
	b = append(b, '{')
	content := len(b)
	for _, m := range members {
		b = appendAttr(b, m)
	}
	if len(b) == content {
		return b[:start]
	}
	return append(b, '}')
}

func sourceGroup(s *slog.Source) slog.Value {
	as := make([]slog.Attr, 0, 3)
	if s.Function != "" {
		as = append(as, slog.String("function", s.Function))
	}
	if s.File != "" {
		as = append(as, slog.String("file", s.File))
	}
	if s.Line != 0 {
		as = append(as, slog.Int("line", s.Line))
	}
	return slog.GroupValue(as...)
}

// appendValue appends a resolved, non-group value of the given kind.
func appendValue(b []byte, v slog.Value, kind slog.Kind) []byte {
	switch kind {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return appendFloat(b, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		// Integer nanoseconds, which is what json.Marshal makes of a
		// time.Duration and therefore what slog writes.
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		return appendTime(b, v.Time())
	default:
		return appendAny(b, v.Any())
	}
}

// appendAny appends a value of a type slog has no kind for. Errors that do not
// marshal themselves are written as their text; everything else goes through
// encoding/json, whose output slog's handler reproduced. User methods
// (Error, MarshalJSON) may panic, typically on a nil pointer receiver; like
// slog, the encoder then writes "<nil>" or the panic instead of crashing.
func appendAny(b []byte, a any) (out []byte) {
	start := len(b)
	defer func() {
		if r := recover(); r != nil {
			out = b[:start]
			if rv := reflect.ValueOf(a); rv.Kind() == reflect.Pointer && rv.IsNil() {
				out = appendString(out, "<nil>")
				return
			}
			out = appendString(out, fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	if a == nil {
		return append(b, "null"...)
	}
	_, marshaler := a.(json.Marshaler)
	if err, ok := a.(error); ok && !marshaler {
		return appendString(b, err.Error())
	}
	return appendJSONMarshal(b, a)
}

// jsonEncoder is a pooled encoding/json encoder with HTML escaping off, the
// configuration slog uses for values it cannot format itself.
type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncoderPool = sync.Pool{New: func() any {
	e := &jsonEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func appendJSONMarshal(b []byte, a any) []byte {
	e := jsonEncoderPool.Get().(*jsonEncoder)
	defer func() {
		if e.buf.Cap() <= maxPooledBuffer {
			e.buf.Reset()
			jsonEncoderPool.Put(e)
		}
	}()
	if err := e.enc.Encode(a); err != nil {
		return appendError(b, err)
	}
	out := e.buf.Bytes()
	return append(b, out[:len(out)-1]...) // Encode adds a newline
}

// appendHexID appends id as a quoted lower-case hex string, as the String
// methods of trace.TraceID and trace.SpanID format it, without their
// allocation.
func appendHexID(b []byte, id []byte) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id)
	return append(b, '"')
}

// levelName is the level's JSON value: slog's names, plus readable names for
// the zap-only levels instead of "ERROR+4".
func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "DEBUG"
	case slog.LevelInfo:
		return "INFO"
	case slog.LevelWarn:
		return "WARN"
	case slog.LevelError:
		return "ERROR"
	case LevelDPanic:
		return "DPANIC"
	case LevelPanic:
		return "PANIC"
	case LevelFatal:
		return "FATAL"
	}
	return l.String()
}
