package otlp

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxNesting bounds how deeply a request may nest messages (protobuf) or
// objects and arrays (JSON). Real OTLP stays within a few dozen levels even
// with structured log bodies (each level of a nested attribute value costs
// two or three). pdata's protobuf decoder recurses without a limit, and a
// body of a few MiB nested a few million levels deep overflows the
// goroutine stack, which is fatal to the whole process rather than a
// recoverable panic; anything downstream that walks values recursively has
// the same weakness. So such bodies are refused before decoding.
const maxNesting = 512

var errTooDeep = fmt.Errorf("request nests deeper than %d levels", maxNesting)

// checkNesting returns errTooDeep when body nests deeper than maxNesting.
// It says nothing about whether body is otherwise valid.
func checkNesting(body []byte, enc wireEncoding) error {
	if enc == encJSON {
		return checkJSONNesting(body)
	}
	if d, _ := protoDepth(body, 1); d > maxNesting {
		return errTooDeep
	}
	return nil
}

// protoDepth returns an upper bound of the message nesting depth of b, a
// protobuf message at the given depth, and whether b parses as a message
// at all. Without a schema a length-delimited field may be a string or a
// message: it is counted as a message whenever its bytes parse as one,
// which can only overestimate. Each byte is read as a field header by at
// most one level, so the walk is linear in len(b); it stops as soon as the
// bound is passed, which also bounds its own recursion.
func protoDepth(b []byte, depth int) (int, bool) {
	if depth > maxNesting {
		return depth, true
	}
	deepest := depth
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return deepest, false
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return deepest, false
			}
			if len(v) > 0 {
				if d, ok := protoDepth(v, depth+1); ok || d > maxNesting {
					deepest = max(deepest, d)
					if deepest > maxNesting {
						return deepest, true
					}
				}
			}
			b = b[m:]
			continue
		}
		// Groups are walked by protowire itself, with its own limit.
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return deepest, false
		}
		b = b[m:]
	}
	return deepest, true
}

// checkJSONNesting counts open objects and arrays outside strings. Malformed
// JSON is left for the decoder to report.
func checkJSONNesting(b []byte) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxNesting {
				return errTooDeep
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
