package logql

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// errBadJSON is what jsonScanner reports on any syntax error; the stage
// turns it into __error__=JSONParserErr.
var errBadJSON = errors.New("logql: not a JSON object")

// jsonScanner walks a JSON object in place for | json, without building
// the tree encoding/json would: values are substrings of the line unless
// they hold escapes, and only the labels' names are built. Like Loki's
// parser (jsonparser.ObjectEach) it adds labels as it reads, so a line
// broken half way keeps the labels before the fault.
type jsonScanner struct {
	s   string
	i   int
	lbs *entryLabels
	// name is the flattened name of the current key, its prefix the
	// names of the objects it is in, joined with '_'.
	name []byte
	// names interns label names across the lines of one query, so that
	// the names of every line's keys are not built again; nil builds
	// them.
	names map[string]string
	// depth bounds the nesting, so that a hostile line cannot grow the
	// stack without end.
	depth int
}

const maxJSONDepth = 512

// maxInternedNames bounds jsonScanner.names: keys that differ from line
// to line (ids used as keys) would grow it without end.
const maxInternedNames = 4096

// parseJSONLine extracts the labels of a JSON object line.
func parseJSONLine(line string, lbs *entryLabels, names map[string]string) error {
	p := jsonScanner{names: names}
	return p.parse(line, lbs)
}

// parse extracts the labels of a JSON object line, reusing the scanner's
// buffers from the line before.
func (p *jsonScanner) parse(line string, lbs *entryLabels) error {
	p.s, p.i, p.lbs, p.name, p.depth = line, 0, lbs, p.name[:0], 0
	p.ws()
	if err := p.object(); err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.s) {
		return errBadJSON
	}
	return nil
}

func (p *jsonScanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScanner) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// object reads {...} at p.i, adding its strings, numbers and booleans
// under p.name and descending into nested objects.
func (p *jsonScanner) object() error {
	if p.peek() != '{' {
		return errBadJSON
	}
	if p.depth++; p.depth > maxJSONDepth {
		return errBadJSON
	}
	defer func() { p.depth-- }()
	p.i++
	p.ws()
	if p.peek() == '}' {
		p.i++
		return nil
	}
	prefix := len(p.name)
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.peek() != ':' {
			return errBadJSON
		}
		p.i++
		p.ws()
		p.name = p.name[:prefix]
		if prefix > 0 {
			p.name = append(p.name, '_')
		}
		p.name = appendSanitized(p.name, key)
		switch c := p.peek(); {
		case c == '{':
			if err := p.object(); err != nil {
				return err
			}
		case c == '"':
			v, err := p.str()
			if err != nil {
				return err
			}
			p.addLabel(v)
		case c == '-' || c >= '0' && c <= '9':
			p.addLabel(p.number())
		case strings.HasPrefix(p.s[p.i:], "true"):
			p.i += 4
			p.addLabel("true")
		case strings.HasPrefix(p.s[p.i:], "false"):
			p.i += 5
			p.addLabel("false")
		default:
			// Arrays and nulls are skipped, as Loki skips them.
			if err := p.skip(); err != nil {
				return err
			}
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			p.name = p.name[:prefix]
			return nil
		default:
			return errBadJSON
		}
	}
}

// addLabel adds the current key's value; a key with no name (""), which
// no label can have, is left out.
func (p *jsonScanner) addLabel(v string) {
	if len(p.name) == 0 {
		return
	}
	name, ok := p.names[string(p.name)]
	if !ok {
		name = string(p.name)
		if p.names != nil && len(p.names) < maxInternedNames {
			p.names[name] = name
		}
	}
	p.lbs.add(name, v)
}

// str reads a string at p.i; one with escapes is decoded by
// encoding/json, the rare case.
func (p *jsonScanner) str() (string, error) {
	if p.peek() != '"' {
		return "", errBadJSON
	}
	// A string with bytes past ASCII that are not UTF-8 takes the slow
	// path too: encoding/json puts U+FFFD for each bad byte, and so must
	// a label value.
	escaped, high := false, false
	for j := p.i + 1; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '\\':
			escaped = true
			j++
		case c >= utf8.RuneSelf:
			high = true
		case c == '"':
			raw := p.s[p.i : j+1]
			p.i = j + 1
			if !escaped && (!high || utf8.ValidString(raw)) {
				return raw[1 : len(raw)-1], nil
			}
			var v string
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				return "", errBadJSON
			}
			return v, nil
		}
	}
	return "", errBadJSON
}

// number reads a number at p.i as written.
func (p *jsonScanner) number() string {
	j := p.i
	for j < len(p.s) && strings.IndexByte("+-.eE0123456789", p.s[j]) >= 0 {
		j++
	}
	v := p.s[p.i:j]
	p.i = j
	return v
}

// skip reads past a value it does not extract: an array (with whatever
// it holds) or null.
func (p *jsonScanner) skip() error {
	switch c := p.peek(); {
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return nil
	case c == '[':
		if p.depth++; p.depth > maxJSONDepth {
			return errBadJSON
		}
		defer func() { p.depth-- }()
		p.i++
		p.ws()
		if p.peek() == ']' {
			p.i++
			return nil
		}
		for {
			p.ws()
			if err := p.skipAny(); err != nil {
				return err
			}
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return nil
			default:
				return errBadJSON
			}
		}
	}
	return errBadJSON
}

// skipAny reads past any value, inside an array: objects there are not
// extracted either, so they are read with a scanner that adds nothing.
func (p *jsonScanner) skipAny() error {
	switch c := p.peek(); {
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		p.number()
		return nil
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return nil
	case c == '{':
		inner := jsonScanner{s: p.s, i: p.i, lbs: &entryLabels{}, depth: p.depth}
		err := inner.object()
		p.i = inner.i
		return err
	}
	return p.skip()
}

// appendSanitized appends sanitizeLabelName(key) without building it.
func appendSanitized(dst []byte, key string) []byte {
	if key != "" && key[0] >= '0' && key[0] <= '9' {
		dst = append(dst, '_')
	}
	for _, r := range key {
		if r < utf8.RuneSelf && isLabelChar(byte(r)) {
			dst = append(dst, byte(r))
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}
