package logql

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokString
	tokNumber
	tokDuration
	tokLBrace    // {
	tokRBrace    // }
	tokLParen    // (
	tokRParen    // )
	tokLBracket  // [
	tokRBracket  // ]
	tokComma     // ,
	tokEq        // =
	tokNeq       // !=
	tokRe        // =~
	tokNre       // !~
	tokPipeExact // |=
	tokPipeMatch // |~
	tokPipe      // |
	tokEqEq      // ==
	tokGt        // >
	tokGte       // >=
	tokLt        // <
	tokLte       // <=
	tokAdd       // +
	tokSub       // -
	tokMul       // *
	tokDiv       // /
	tokMod       // %
	tokPow       // ^
)

var tokenNames = [...]string{
	tokEOF: "end of query", tokIdent: "identifier", tokString: "string", tokNumber: "number",
	tokDuration: "duration", tokLBrace: "'{'", tokRBrace: "'}'", tokLParen: "'('", tokRParen: "')'",
	tokLBracket: "'['", tokRBracket: "']'", tokComma: "','", tokEq: "'='", tokNeq: "'!='",
	tokRe: "'=~'", tokNre: "'!~'", tokPipeExact: "'|='", tokPipeMatch: "'|~'", tokPipe: "'|'",
	tokEqEq: "'=='", tokGt: "'>'", tokGte: "'>='", tokLt: "'<'", tokLte: "'<='", tokAdd: "'+'",
	tokSub: "'-'", tokMul: "'*'", tokDiv: "'/'", tokMod: "'%'", tokPow: "'^'",
}

func (k tokenKind) String() string { return tokenNames[k] }

type token struct {
	kind tokenKind
	pos  Pos
	text string // source text; for strings, the unquoted value
}

// describe names a token for an error message: "identifier foo",
// "string \"x\"", "'|='".
func (t token) describe() string {
	switch t.kind {
	case tokIdent, tokNumber, tokDuration:
		return fmt.Sprintf("%s %s", t.kind, t.text)
	case tokString:
		return fmt.Sprintf("string %s", strconv.Quote(t.text))
	}
	return t.kind.String()
}

// lexer turns a query into tokens; it stops at the first error.
type lexer struct {
	src string
	pos int
}

// twoChar are the operators of two characters, looked up before one.
var twoChar = map[string]tokenKind{
	"!=": tokNeq, "=~": tokRe, "!~": tokNre, "|=": tokPipeExact, "|~": tokPipeMatch,
	"==": tokEqEq, ">=": tokGte, "<=": tokLte,
}

var oneChar = map[byte]tokenKind{
	'{': tokLBrace, '}': tokRBrace, '(': tokLParen, ')': tokRParen, '[': tokLBracket,
	']': tokRBracket, ',': tokComma, '=': tokEq, '|': tokPipe, '>': tokGt, '<': tokLt,
	'+': tokAdd, '-': tokSub, '*': tokMul, '/': tokDiv, '%': tokMod, '^': tokPow,
}

func (l *lexer) next() (token, error) {
	l.skipSpace()
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tokEOF, pos: Pos(start)}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '"' || c == '`':
		return l.string()
	case isDigit(c) || c == '.' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]):
		return l.number(), nil
	case isIdentStart(c):
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		return token{kind: tokIdent, pos: Pos(start), text: l.src[start:l.pos]}, nil
	}
	if l.pos+2 <= len(l.src) {
		if k, ok := twoChar[l.src[l.pos:l.pos+2]]; ok {
			l.pos += 2
			return token{kind: k, pos: Pos(start), text: l.src[start:l.pos]}, nil
		}
	}
	if k, ok := oneChar[c]; ok {
		l.pos++
		return token{kind: k, pos: Pos(start), text: l.src[start:l.pos]}, nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return token{}, newError(l.src, Pos(start), "unexpected character %q", r)
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		switch l.src[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		case '#': // a comment runs to the end of the line
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		default:
			return
		}
	}
}

// number reads a number or a duration: a run of digits, dots and letters
// that starts with a digit. Whether it is a number is decided by
// strconv.ParseFloat, so 1e3 is a number and 1h30m a duration; the parser
// checks durations where they are used.
func (l *lexer) number() token {
	start := l.pos
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if isDigit(c) || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' {
			l.pos++
			continue
		}
		// An exponent's sign: 1e-3.
		if (c == '-' || c == '+') && l.pos > start && (l.src[l.pos-1] == 'e' || l.src[l.pos-1] == 'E') && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]) {
			l.pos++
			continue
		}
		break
	}
	text := l.src[start:l.pos]
	if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "_xXpP") {
		return token{kind: tokNumber, pos: Pos(start), text: text}
	}
	return token{kind: tokDuration, pos: Pos(start), text: text}
}

// string reads a double-quoted string with Go escapes or a raw backtick
// string; the token's text is the value.
func (l *lexer) string() (token, error) {
	start := l.pos
	q := l.src[l.pos]
	l.pos++
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == q:
			l.pos++
			raw := l.src[start:l.pos]
			if q == '`' {
				return token{kind: tokString, pos: Pos(start), text: raw[1 : len(raw)-1]}, nil
			}
			v, err := strconv.Unquote(raw)
			if err != nil {
				return token{}, newError(l.src, Pos(start), "invalid escape in string %s", raw)
			}
			return token{kind: tokString, pos: Pos(start), text: v}, nil
		case c == '\\' && q == '"':
			l.pos += 2
			continue
		case c == '\n' && q == '"':
			return token{}, newError(l.src, Pos(start), "newline in string")
		}
		l.pos++
	}
	return token{}, newError(l.src, Pos(start), "unterminated string")
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
