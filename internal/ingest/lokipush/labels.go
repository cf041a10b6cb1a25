package lokipush

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrBadLabels means a stream's label set is not a valid selector such as
// {job="x", host="y"}.
var ErrBadLabels = errors.New("lokipush: bad stream labels")

var errNoLabels = errors.New("at least one label pair with a non-empty value is required")

// Label is one name/value pair of a stream's label set or of an entry's
// structured metadata.
type Label struct {
	Name  string
	Value string
}

// ParseLabels reads a stream label string as the protobuf push format sends
// it: a brace-enclosed, comma-separated list of name="value" pairs, values
// quoted with double quotes, single quotes or backticks as in Prometheus,
// with Go escapes inside double and single quotes. The result is sorted by
// name. A label with an empty value is left out, as Prometheus does: it is
// the same as no label, and refusing it would cost the stream's lines. A
// set left empty, and a repeated name, are refused because a store keyed
// by label set could not tell such streams apart.
func ParseLabels(s string) ([]Label, error) {
	p := labelParser{s: s}
	ls, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLabels, err)
	}
	return ls, nil
}

type labelParser struct {
	s   string
	pos int
}

func (p *labelParser) parse() ([]Label, error) {
	p.space()
	if !p.eat('{') {
		return nil, p.errorf("expected '{'")
	}
	var ls []Label
	p.space()
	if p.eat('}') {
		return nil, errNoLabels
	}
	for {
		p.space()
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat('=') {
			return nil, p.errorf("expected '=' after label name %q", name)
		}
		p.space()
		value, err := p.quoted()
		if err != nil {
			return nil, err
		}
		if value != "" {
			ls = append(ls, Label{Name: name, Value: value})
		}
		p.space()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return nil, p.errorf("expected ',' or '}'")
		}
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, p.errorf("unexpected text after '}'")
	}
	if len(ls) == 0 {
		return nil, errNoLabels
	}
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(ls); i++ {
		if ls[i].Name == ls[i-1].Name {
			return nil, fmt.Errorf("duplicate label name %q", ls[i].Name)
		}
	}
	return ls, nil
}

func (p *labelParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *labelParser) space() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *labelParser) eat(c byte) bool {
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *labelParser) name() (string, error) {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || p.pos > start && '0' <= c && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		return "", p.errorf("expected label name")
	}
	return p.s[start:p.pos], nil
}

// quoted reads a quoted value; a value without escapes is a substring of the
// input, so the common case allocates nothing.
func (p *labelParser) quoted() (string, error) {
	if p.pos >= len(p.s) {
		return "", p.errorf("expected quoted label value")
	}
	q := p.s[p.pos]
	if q != '"' && q != '\'' && q != '`' {
		return "", p.errorf("expected quoted label value")
	}
	start := p.pos
	p.pos++
	if q == '`' {
		end := strings.IndexByte(p.s[p.pos:], '`')
		if end < 0 {
			return "", p.errorf("unterminated raw string")
		}
		v := p.s[p.pos : p.pos+end]
		p.pos += end + 1
		return v, nil
	}
	escaped := false
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == '\\':
			escaped = true
			p.pos += 2
			continue
		case c == q:
			p.pos++
			raw := p.s[start:p.pos]
			if !escaped {
				return raw[1 : len(raw)-1], nil
			}
			return unquote(raw, q)
		case c == '\n':
			return "", p.errorf("newline in quoted label value")
		}
		p.pos++
	}
	p.pos = len(p.s)
	return "", p.errorf("unterminated quoted label value")
}

// unquote undoes the escapes of a quoted string, whatever its quote
// character: strconv.Unquote would refuse a multi-character single-quoted
// string.
func unquote(raw string, q byte) (string, error) {
	s := raw[1 : len(raw)-1]
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		r, multibyte, tail, err := strconv.UnquoteChar(s, q)
		if err != nil {
			return "", fmt.Errorf("bad escape in %s: %w", raw, err)
		}
		s = tail
		if r < utf8.RuneSelf || !multibyte {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
