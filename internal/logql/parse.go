package logql

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// ErrParse is wrapped by every error Parse returns.
var ErrParse = errors.New("logql: parse error")

// Error is a parse error at a place in the query.
type Error struct {
	Pos       Pos
	Line, Col int // 1-based; Col counts bytes
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Unwrap makes errors.Is(err, ErrParse) hold.
func (e *Error) Unwrap() error { return ErrParse }

func newError(src string, pos Pos, format string, args ...any) *Error {
	p := min(max(int(pos), 0), len(src))
	line := 1 + strings.Count(src[:p], "\n")
	col := p + 1
	if i := strings.LastIndexByte(src[:p], '\n'); i >= 0 {
		col = p - i
	}
	return &Error{Pos: pos, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// MaxQueryLength bounds what Parse reads, and with it the nesting depth a
// query can reach, so that a hostile query cannot exhaust the stack.
const MaxQueryLength = 64 << 10

// maxDepth bounds the nesting of parentheses and aggregations.
const maxDepth = 200

// Parse parses a LogQL query of the subset this package covers. Errors
// wrap ErrParse and are *Error values saying where the problem is.
func Parse(query string) (Expr, error) {
	if len(query) > MaxQueryLength {
		return nil, newError(query, 0, "query is %d bytes long, more than %d", len(query), MaxQueryLength)
	}
	p := &parser{lex: lexer{src: query}}
	e, err := p.parseQuery()
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ParseLogQuery parses a query that must be a log query (a selector and
// its pipeline), as the log endpoints and the label browser's match[]
// take.
func ParseLogQuery(query string) (*LogQuery, error) {
	e, err := Parse(query)
	if err != nil {
		return nil, err
	}
	q, ok := e.(*LogQuery)
	if !ok {
		return nil, newError(query, 0, "expected a log query, found a metric query")
	}
	return q, nil
}

type parser struct {
	lex   lexer
	tok   token // current token
	peekd *token
	depth int
}

// advance reads the next token into p.tok.
func (p *parser) advance() error {
	if p.peekd != nil {
		p.tok, p.peekd = *p.peekd, nil
		return nil
	}
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token after the current one.
func (p *parser) peek() (token, error) {
	if p.peekd == nil {
		t, err := p.lex.next()
		if err != nil {
			return token{}, err
		}
		p.peekd = &t
	}
	return *p.peekd, nil
}

func (p *parser) errorf(pos Pos, format string, args ...any) error {
	return newError(p.lex.src, pos, format, args...)
}

// unexpected reports the current token where something else was needed.
func (p *parser) unexpected(want string) error {
	return p.errorf(p.tok.pos, "expected %s, found %s", want, p.tok.describe())
}

func (p *parser) expect(k tokenKind, want string) (token, error) {
	if p.tok.kind != k {
		return token{}, p.unexpected(want)
	}
	t := p.tok
	return t, p.advance()
}

func (p *parser) parseQuery() (Expr, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return nil, p.unexpected("a query")
	}
	e, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.unexpected("an operator or end of query")
	}
	return e, nil
}

// binaryOps are the tokens of binary operators; "and", "or" and "unless"
// are identifiers, looked up by text.
var binaryOps = map[tokenKind]BinaryOp{
	tokEqEq: OpEq, tokNeq: OpNe, tokGt: OpGt, tokGte: OpGe, tokLt: OpLt, tokLte: OpLe,
	tokAdd: OpAdd, tokSub: OpSub, tokMul: OpMul, tokDiv: OpDiv, tokMod: OpMod, tokPow: OpPow,
}

// binaryOp returns the operator a token is and its precedence, or 0.
func binaryOp(t token) (BinaryOp, int) {
	op, ok := binaryOps[t.kind]
	if t.kind == tokIdent {
		switch BinaryOp(t.text) {
		case OpOr, OpAnd, OpUnless:
			op, ok = BinaryOp(t.text), true
		}
	}
	if !ok {
		return "", 0
	}
	return op, op.precedence()
}

// parseExpr parses by precedence climbing; operators bind left to right
// except ^.
func (p *parser) parseExpr(minPrec int) (Expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf(p.tok.pos, "query nested more than %d deep", maxDepth)
	}
	lhs, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec := binaryOp(p.tok)
		if prec == 0 || prec < minPrec {
			return lhs, nil
		}
		opTok := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		returnBool := false
		if op.IsComparison() && p.tok.kind == tokIdent && p.tok.text == "bool" {
			returnBool = true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		next := prec + 1
		if op == OpPow {
			next = prec
		}
		rhs, err := p.parseExpr(next)
		if err != nil {
			return nil, err
		}
		l, err := p.metricOperand(lhs, opTok)
		if err != nil {
			return nil, err
		}
		r, err := p.metricOperand(rhs, opTok)
		if err != nil {
			return nil, err
		}
		if _, ok := l.(*NumberLiteral); ok && (op == OpAnd || op == OpOr || op == OpUnless) {
			return nil, p.errorf(opTok.pos, "set operator %s is not allowed between scalars", op)
		}
		if _, ok := r.(*NumberLiteral); ok && (op == OpAnd || op == OpOr || op == OpUnless) {
			return nil, p.errorf(opTok.pos, "set operator %s is not allowed with a scalar", op)
		}
		lhs = &BinaryExpr{Pos: lhs.Position(), Op: op, ReturnBool: returnBool, LHS: l, RHS: r}
	}
}

func (p *parser) metricOperand(e Expr, op token) (MetricExpr, error) {
	if m, ok := e.(MetricExpr); ok {
		return m, nil
	}
	return nil, p.errorf(e.Position(), "operator %s needs metric queries on both sides, found a log query; count its lines with count_over_time(...[1m])", op.text)
}

func (p *parser) parseUnary() (Expr, error) {
	if p.tok.kind == tokSub || p.tok.kind == tokAdd {
		neg := p.tok.kind == tokSub
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokNumber {
			return nil, p.unexpected("a number after the sign")
		}
		n, err := p.parseNumber()
		if err != nil {
			return nil, err
		}
		if neg {
			n.Value = -n.Value
		}
		n.Pos = pos
		return n, nil
	}
	return p.parsePrimary()
}

func (p *parser) parseNumber() (*NumberLiteral, error) {
	t := p.tok
	v, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		return nil, p.errorf(t.pos, "bad number %s", t.text)
	}
	return &NumberLiteral{Pos: t.pos, Value: v}, p.advance()
}

func (p *parser) parsePrimary() (Expr, error) {
	switch p.tok.kind {
	case tokLBrace:
		return p.parseLogQuery()
	case tokNumber:
		return p.parseNumber()
	case tokLParen:
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.parseExpr(0)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	case tokIdent:
		name := p.tok.text
		switch RangeOp(name) {
		case CountOverTime, Rate, BytesOverTime, BytesRate:
			return p.parseRangeAggregation()
		}
		switch VectorOp(name) {
		case Sum, Avg, Min, Max, Count, Stddev, Stdvar, Topk, Bottomk:
			return p.parseVectorAggregation()
		}
		if name == "vector" {
			return p.parseVectorLiteral()
		}
		if unsupportedFunctions[name] {
			return nil, p.errorf(p.tok.pos, "function %s is not supported", name)
		}
		return nil, p.errorf(p.tok.pos, "unknown function %s; expected a stream selector, a range or vector aggregation, vector() or a number", name)
	}
	return nil, p.unexpected("a stream selector, an aggregation or a number")
}

// unsupportedFunctions are LogQL functions left out of the subset, named
// so that the error says so instead of calling them unknown.
var unsupportedFunctions = map[string]bool{
	"sum_over_time": true, "avg_over_time": true, "max_over_time": true, "min_over_time": true,
	"first_over_time": true, "last_over_time": true, "stddev_over_time": true, "stdvar_over_time": true,
	"quantile_over_time": true, "absent_over_time": true, "rate_counter": true, "sort": true,
	"sort_desc": true, "label_replace": true, "quantile": true, "approx_topk": true,
}

// parseLogQuery parses {matchers} and the pipeline after it.
func (p *parser) parseLogQuery() (*LogQuery, error) {
	q := &LogQuery{Pos: p.tok.pos}
	if _, err := p.expect(tokLBrace, "'{'"); err != nil {
		return nil, err
	}
	for p.tok.kind != tokRBrace {
		m, err := p.parseMatcher("label matcher")
		if err != nil {
			return nil, err
		}
		q.Matchers = append(q.Matchers, m)
		if p.tok.kind == tokComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		if p.tok.kind != tokRBrace {
			return nil, p.unexpected("',' or '}'")
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := checkSelector(p.lex.src, q); err != nil {
		return nil, err
	}
	for {
		s, err := p.parseStage()
		if err != nil {
			return nil, err
		}
		if s == nil {
			return q, nil
		}
		q.Pipeline = append(q.Pipeline, s)
	}
}

// checkSelector applies Loki's rule that a selector must narrow the
// streams: at least one matcher must refuse the empty value, or the query
// would read every stream in the store.
func checkSelector(src string, q *LogQuery) error {
	if len(q.Matchers) == 0 {
		return newError(src, q.Pos, "stream selector is empty; it needs at least one label matcher, e.g. {app=\"x\"}")
	}
	for _, m := range q.Matchers {
		if !m.Matches("") {
			return nil
		}
	}
	return newError(src, q.Pos, "stream selector %s matches the empty value with every matcher; at least one matcher must not match empty (e.g. app=\"x\" or app=~\".+\")", q.Selector())
}

// parseMatcher parses name op "value" with a string operator.
func (p *parser) parseMatcher(what string) (*Matcher, error) {
	if p.tok.kind != tokIdent {
		return nil, p.unexpected(what)
	}
	m := &Matcher{Pos: p.tok.pos, Name: p.tok.text}
	if err := p.advance(); err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tokEq:
		m.Op = MatchEqual
	case tokNeq:
		m.Op = MatchNotEqual
	case tokRe:
		m.Op = MatchRegexp
	case tokNre:
		m.Op = MatchNotRegexp
	default:
		return nil, p.unexpected("'=', '!=', '=~' or '!~' after label " + m.Name)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	t, err := p.expect(tokString, "a quoted label value")
	if err != nil {
		return nil, err
	}
	m.Value = t.text
	if m.Op == MatchRegexp || m.Op == MatchNotRegexp {
		// Compiled alone first so that an error quotes the user's text.
		if _, err := regexp.Compile(m.Value); err != nil {
			return nil, p.errorf(t.pos, "invalid regexp %s: %v", strconv.Quote(m.Value), regexpError(err))
		}
		// Anchored like Prometheus's matchers: the value must match whole.
		re, err := regexp.Compile("^(?s:" + m.Value + ")$")
		if err != nil {
			return nil, p.errorf(t.pos, "invalid regexp %s: %v", strconv.Quote(m.Value), regexpError(err))
		}
		m.re = re
	}
	return m, nil
}

// regexpError drops the regexp package's own prefix, which repeats the
// expression in the message.
func regexpError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s: %s", se.Code, se.Expr)
	}
	return err.Error()
}

// parseStage parses one pipeline stage, or returns nil when the pipeline
// has ended.
func (p *parser) parseStage() (Stage, error) {
	switch p.tok.kind {
	case tokPipeExact, tokNeq, tokPipeMatch, tokNre:
		return p.parseLineFilter()
	case tokPipe:
	default:
		return nil, nil
	}
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokIdent {
		next, err := p.peek()
		if err != nil {
			return nil, err
		}
		if !isFilterOp(next.kind) {
			return p.parseNamedStage(pos)
		}
	}
	if p.tok.kind != tokIdent && p.tok.kind != tokLParen {
		return nil, p.unexpected("a parser, a label filter or line_format after '|'")
	}
	f, err := p.parseLabelFilter(0)
	if err != nil {
		return nil, err
	}
	return &LabelFilterStage{Pos: pos, Filter: f}, nil
}

func isFilterOp(k tokenKind) bool {
	switch k {
	case tokEq, tokNeq, tokRe, tokNre, tokEqEq, tokGt, tokGte, tokLt, tokLte:
		return true
	}
	return false
}

// unsupportedStages are LogQL stages left out of the subset.
var unsupportedStages = map[string]bool{
	"regexp": true, "pattern": true, "unpack": true, "label_format": true,
	"unwrap": true, "decolorize": true, "distinct": true,
}

func (p *parser) parseNamedStage(pos Pos) (Stage, error) {
	name := p.tok
	switch name.text {
	case "json", "logfmt":
		if err := p.advance(); err != nil {
			return nil, err
		}
		ps := &Parser{Pos: pos, Kind: name.text}
		if name.text == "json" {
			if err := p.parseJSONParams(ps); err != nil {
				return nil, err
			}
		}
		return ps, nil
	case "line_format":
		if err := p.advance(); err != nil {
			return nil, err
		}
		t, err := p.expect(tokString, "a quoted template after line_format")
		if err != nil {
			return nil, err
		}
		return &LineFormat{Pos: pos, Template: t.text}, nil
	case "drop", "keep":
		if err := p.advance(); err != nil {
			return nil, err
		}
		return p.parseDropKeep(pos, name.text == "keep")
	}
	if unsupportedStages[name.text] {
		return nil, p.errorf(name.pos, "pipeline stage %s is not supported", name.text)
	}
	return nil, p.errorf(name.pos, "expected a parser (json, logfmt), line_format, drop, keep or a label filter, found %s", name.describe())
}

// parseJSONParams parses the optional label="path" list of | json.
func (p *parser) parseJSONParams(ps *Parser) error {
	for p.tok.kind == tokIdent {
		next, err := p.peek()
		if err != nil {
			return err
		}
		if next.kind != tokEq {
			return nil
		}
		label := p.tok.text
		if err := p.advance(); err != nil { // the name
			return err
		}
		if err := p.advance(); err != nil { // '='
			return err
		}
		t, err := p.expect(tokString, "a quoted JSON path")
		if err != nil {
			return err
		}
		ps.Params = append(ps.Params, JSONParam{Label: label, Path: t.text})
		if p.tok.kind != tokComma {
			return nil
		}
		if err := p.advance(); err != nil {
			return err
		}
		if p.tok.kind != tokIdent {
			return p.unexpected("a label name after ','")
		}
	}
	return nil
}

func (p *parser) parseDropKeep(pos Pos, keep bool) (Stage, error) {
	d := &DropKeep{Pos: pos, Keep: keep}
	for {
		if p.tok.kind != tokIdent {
			return nil, p.unexpected("a label name")
		}
		next, err := p.peek()
		if err != nil {
			return nil, err
		}
		switch next.kind {
		case tokEq, tokNeq, tokRe, tokNre:
			m, err := p.parseMatcher("a label name")
			if err != nil {
				return nil, err
			}
			d.Labels = append(d.Labels, DropKeepLabel{Name: m.Name, Matcher: m})
		default:
			d.Labels = append(d.Labels, DropKeepLabel{Name: p.tok.text})
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.kind != tokComma {
			return d, nil
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseLineFilter() (Stage, error) {
	f := &LineFilter{Pos: p.tok.pos}
	switch p.tok.kind {
	case tokPipeExact:
		f.Op = FilterContains
	case tokNeq:
		f.Op = FilterNotContains
	case tokPipeMatch:
		f.Op = FilterMatch
	case tokNre:
		f.Op = FilterNotMatch
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	t, err := p.expect(tokString, "a quoted string after the line filter "+f.Op.String())
	if err != nil {
		return nil, err
	}
	f.Value = t.text
	if f.Op == FilterMatch || f.Op == FilterNotMatch {
		re, err := regexp.Compile(f.Value)
		if err != nil {
			return nil, p.errorf(t.pos, "invalid regexp %s: %v", strconv.Quote(f.Value), regexpError(err))
		}
		f.re = re
	}
	return f, nil
}

// parseLabelFilter parses label filters joined by "or" (1), and by "and",
// ',' or nothing (2).
func (p *parser) parseLabelFilter(minPrec int) (LabelFilter, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errorf(p.tok.pos, "label filter nested more than %d deep", maxDepth)
	}
	lhs, err := p.parseLabelFilterPrimary()
	if err != nil {
		return nil, err
	}
	for {
		prec, explicit := 0, true
		switch {
		case p.tok.kind == tokIdent && p.tok.text == "or":
			prec = 1
		case p.tok.kind == tokIdent && p.tok.text == "and", p.tok.kind == tokComma:
			prec = 2
		case p.tok.kind == tokIdent, p.tok.kind == tokLParen:
			// "| a="x" b="y"": juxtaposition is and. An identifier that
			// ends the query, like "or" of a metric operator, is not a
			// filter: only a filter operator after it makes it one.
			next, err := p.peek()
			if err != nil {
				return nil, err
			}
			if p.tok.kind == tokLParen || isFilterOp(next.kind) {
				prec, explicit = 2, false
			}
		}
		if prec == 0 || prec < minPrec {
			return lhs, nil
		}
		if explicit {
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		rhs, err := p.parseLabelFilter(prec + 1)
		if err != nil {
			return nil, err
		}
		lhs = &LabelFilterBinary{Pos: lhs.Position(), Or: prec == 1, LHS: lhs, RHS: rhs}
	}
}

func (p *parser) parseLabelFilterPrimary() (LabelFilter, error) {
	if p.tok.kind == tokLParen {
		if err := p.advance(); err != nil {
			return nil, err
		}
		f, err := p.parseLabelFilter(0)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return f, nil
	}
	if p.tok.kind != tokIdent {
		return nil, p.unexpected("a label filter")
	}
	next, err := p.peek()
	if err != nil {
		return nil, err
	}
	// A string after = or != makes a string filter; a number or duration
	// a numeric one.
	if next.kind == tokRe || next.kind == tokNre {
		return p.parseMatcher("a label filter")
	}
	if next.kind == tokEq || next.kind == tokNeq {
		name, op := p.tok, next
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tokString {
			m := &Matcher{Pos: name.pos, Name: name.text, Op: MatchEqual, Value: p.tok.text}
			if op.kind == tokNeq {
				m.Op = MatchNotEqual
			}
			return m, p.advance()
		}
		cmp := CmpEq
		if op.kind == tokNeq {
			cmp = CmpNe
		}
		return p.parseCompareValue(name, cmp)
	}
	name := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	var cmp CompareOp
	switch p.tok.kind {
	case tokEqEq:
		cmp = CmpEq
	case tokGt:
		cmp = CmpGt
	case tokGte:
		cmp = CmpGe
	case tokLt:
		cmp = CmpLt
	case tokLte:
		cmp = CmpLe
	default:
		return nil, p.unexpected("a comparison after label " + name.text)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return p.parseCompareValue(name, cmp)
}

// parseCompareValue reads the number or duration a label is compared to;
// the current token is the value.
func (p *parser) parseCompareValue(name token, cmp CompareOp) (LabelFilter, error) {
	neg := false
	if p.tok.kind == tokSub {
		neg = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	t := p.tok
	switch t.kind {
	case tokNumber:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, p.errorf(t.pos, "bad number %s", t.text)
		}
		if neg {
			v = -v
		}
		return &NumberFilter{Pos: name.pos, Name: name.text, Op: cmp, Value: v}, p.advance()
	case tokDuration:
		d, err := time.ParseDuration(t.text)
		if err != nil {
			return nil, p.errorf(t.pos, "bad duration %s (want e.g. 500ms, 1.5s, 1h30m)", t.text)
		}
		if neg {
			d = -d
		}
		return &DurationFilter{Pos: name.pos, Name: name.text, Op: cmp, Value: d}, p.advance()
	case tokString:
		if cmp != CmpEq && cmp != CmpNe {
			return nil, p.errorf(t.pos, "label %s compared with %s to a string; use a number or a duration", name.text, cmp)
		}
	}
	return nil, p.unexpected("a number or a duration")
}

// parseRange parses [duration].
func (p *parser) parseRange() (time.Duration, error) {
	if _, err := p.expect(tokLBracket, "'['"); err != nil {
		return 0, err
	}
	d, err := p.parseDuration("a range like 5m")
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, p.errorf(p.tok.pos, "range must be positive")
	}
	_, err = p.expect(tokRBracket, "']'")
	return d, err
}

// parseDuration reads a Prometheus duration (1m, 1h30m, 500ms, 1d).
func (p *parser) parseDuration(want string) (time.Duration, error) {
	if p.tok.kind != tokDuration && p.tok.kind != tokNumber {
		return 0, p.unexpected(want)
	}
	t := p.tok
	d, err := model.ParseDuration(t.text)
	if err != nil {
		return 0, p.errorf(t.pos, "bad duration %s (want e.g. 30s, 5m, 1h30m)", t.text)
	}
	return time.Duration(d), p.advance()
}

func (p *parser) parseRangeAggregation() (Expr, error) {
	r := &RangeAggregation{Pos: p.tok.pos, Op: RangeOp(p.tok.text)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokLParen, "'(' after "+string(r.Op)); err != nil {
		return nil, err
	}
	var err error
	if p.tok.kind == tokLParen {
		// count_over_time(({app="x"} |= "y")[5m])
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokLBrace {
			return nil, p.unexpected("a log query")
		}
		if r.Query, err = p.parseLogQuery(); err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
	} else {
		if p.tok.kind != tokLBrace {
			return nil, p.unexpected(fmt.Sprintf("a log query in %s", r.Op))
		}
		if r.Query, err = p.parseLogQuery(); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tokLBracket {
		return nil, p.errorf(p.tok.pos, "%s needs a range after its log query, e.g. %s({app=\"x\"}[5m]); found %s", r.Op, r.Op, p.tok.describe())
	}
	if r.Range, err = p.parseRange(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokIdent && p.tok.text == "offset" {
		if err := p.advance(); err != nil {
			return nil, err
		}
		neg := false
		if p.tok.kind == tokSub {
			neg = true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if r.Offset, err = p.parseDuration("an offset like 1h"); err != nil {
			return nil, err
		}
		if neg {
			r.Offset = -r.Offset
		}
	}
	if _, err := p.expect(tokRParen, "')' after the range"); err != nil {
		return nil, err
	}
	return r, nil
}

func (p *parser) parseGrouping() (*Grouping, error) {
	g := &Grouping{Without: p.tok.text == "without"}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokLParen, "'(' after "+map[bool]string{false: "by", true: "without"}[g.Without]); err != nil {
		return nil, err
	}
	for p.tok.kind != tokRParen {
		t, err := p.expect(tokIdent, "a label name")
		if err != nil {
			return nil, err
		}
		g.Labels = append(g.Labels, t.text)
		if p.tok.kind == tokComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		if p.tok.kind != tokRParen {
			return nil, p.unexpected("',' or ')'")
		}
	}
	return g, p.advance()
}

func isGrouping(t token) bool {
	return t.kind == tokIdent && (t.text == "by" || t.text == "without")
}

func (p *parser) parseVectorAggregation() (Expr, error) {
	v := &VectorAggregation{Pos: p.tok.pos, Op: VectorOp(p.tok.text)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var err error
	if isGrouping(p.tok) {
		if v.Grouping, err = p.parseGrouping(); err != nil {
			return nil, err
		}
	}
	if _, err := p.expect(tokLParen, "'(' after "+string(v.Op)); err != nil {
		return nil, err
	}
	if v.Op == Topk || v.Op == Bottomk {
		t := p.tok
		if t.kind != tokNumber {
			return nil, p.unexpected(fmt.Sprintf("the number of series %s keeps", v.Op))
		}
		k, err := strconv.Atoi(t.text)
		if err != nil || k <= 0 {
			return nil, p.errorf(t.pos, "%s needs a positive integer, found %s", v.Op, t.text)
		}
		v.Param = k
		if err := p.advance(); err != nil {
			return nil, err
		}
		if _, err := p.expect(tokComma, "','"); err != nil {
			return nil, err
		}
	}
	start := p.tok.pos
	e, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	m, ok := e.(MetricExpr)
	if !ok {
		return nil, p.errorf(start, "%s needs a metric query, found a log query; count its lines with count_over_time(...[1m])", v.Op)
	}
	if _, ok := m.(*NumberLiteral); ok {
		return nil, p.errorf(start, "%s needs a vector, found a number", v.Op)
	}
	v.Expr = m
	if _, err := p.expect(tokRParen, "')'"); err != nil {
		return nil, err
	}
	if isGrouping(p.tok) {
		if v.Grouping != nil {
			return nil, p.errorf(p.tok.pos, "%s has two groupings", v.Op)
		}
		if v.Grouping, err = p.parseGrouping(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (p *parser) parseVectorLiteral() (Expr, error) {
	v := &VectorLiteral{Pos: p.tok.pos}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokLParen, "'(' after vector"); err != nil {
		return nil, err
	}
	e, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	n, ok := e.(*NumberLiteral)
	if !ok {
		return nil, p.errorf(e.Position(), "vector() takes a number")
	}
	v.Value = n.Value
	if _, err := p.expect(tokRParen, "')'"); err != nil {
		return nil, err
	}
	return v, nil
}
