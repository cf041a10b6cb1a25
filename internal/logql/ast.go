package logql

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Pos is a byte offset into the query.
type Pos int

// Node is any node of the syntax tree. String prints it as canonical
// LogQL, which parses back to the same tree.
type Node interface {
	Position() Pos
	String() string
}

// Expr is a whole query: a *LogQuery or a MetricExpr.
type Expr interface {
	Node
	expr()
}

// MetricExpr is a query whose result is samples, not log lines.
type MetricExpr interface {
	Expr
	metricExpr()
}

// MatchOp is the operator of a label matcher or string label filter.
type MatchOp int

// The match operators.
const (
	MatchEqual     MatchOp = iota // =
	MatchNotEqual                 // !=
	MatchRegexp                   // =~
	MatchNotRegexp                // !~
)

var matchOpStrings = [...]string{"=", "!=", "=~", "!~"}

func (o MatchOp) String() string { return matchOpStrings[o] }

// Matcher is one label matcher of a stream selector, or a string label
// filter: name op "value".
type Matcher struct {
	Pos   Pos
	Name  string
	Op    MatchOp
	Value string

	// re is the compiled, fully anchored regexp of =~ and !~.
	re *regexp.Regexp
}

// Matches reports whether a label value matches; an absent label has the
// value "".
func (m *Matcher) Matches(v string) bool {
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// Position returns where the matcher starts.
func (m *Matcher) Position() Pos { return m.Pos }

func (m *Matcher) String() string { return m.Name + m.Op.String() + strconv.Quote(m.Value) }

// LogQuery is a stream selector and the pipeline its lines go through.
type LogQuery struct {
	Pos      Pos
	Matchers []*Matcher
	Pipeline []Stage
}

func (*LogQuery) expr() {}

// Position returns where the selector's '{' is.
func (q *LogQuery) Position() Pos { return q.Pos }

// Selector prints the stream selector alone.
func (q *LogQuery) Selector() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range q.Matchers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}

func (q *LogQuery) String() string {
	var b strings.Builder
	b.WriteString(q.Selector())
	for _, s := range q.Pipeline {
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

// Stage is one step of a log pipeline.
type Stage interface {
	Node
	stage()
}

// FilterOp is the operator of a line filter.
type FilterOp int

// The line filter operators.
const (
	FilterContains    FilterOp = iota // |=
	FilterNotContains                 // !=
	FilterMatch                       // |~
	FilterNotMatch                    // !~
)

var filterOpStrings = [...]string{"|=", "!=", "|~", "!~"}

func (o FilterOp) String() string { return filterOpStrings[o] }

// LineFilter keeps or drops lines by substring or regexp.
type LineFilter struct {
	Pos   Pos
	Op    FilterOp
	Value string

	re *regexp.Regexp // unanchored, for |~ and !~
}

func (*LineFilter) stage() {}

// Position returns where the operator is.
func (f *LineFilter) Position() Pos { return f.Pos }

func (f *LineFilter) String() string { return f.Op.String() + " " + strconv.Quote(f.Value) }

// Matches reports whether the filter keeps a line.
func (f *LineFilter) Matches(line string) bool {
	switch f.Op {
	case FilterContains:
		return strings.Contains(line, f.Value)
	case FilterNotContains:
		return !strings.Contains(line, f.Value)
	case FilterMatch:
		return f.re.MatchString(line)
	default:
		return !f.re.MatchString(line)
	}
}

// Parser extracts labels from the line: | json, | json a="b.c", | logfmt.
type Parser struct {
	Pos  Pos
	Kind string // "json" or "logfmt"
	// Params are json's extractions: label name = JSON path expression.
	Params []JSONParam
}

// JSONParam is one label = "path" of | json.
type JSONParam struct {
	Label string
	Path  string
}

func (*Parser) stage() {}

// Position returns where the '|' is.
func (p *Parser) Position() Pos { return p.Pos }

func (p *Parser) String() string {
	var b strings.Builder
	b.WriteString("| ")
	b.WriteString(p.Kind)
	for i, prm := range p.Params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(prm.Label + "=" + strconv.Quote(prm.Path))
	}
	return b.String()
}

// LabelFilterStage is | followed by a label filter expression.
type LabelFilterStage struct {
	Pos    Pos
	Filter LabelFilter
}

func (*LabelFilterStage) stage() {}

// Position returns where the '|' is.
func (s *LabelFilterStage) Position() Pos { return s.Pos }

func (s *LabelFilterStage) String() string { return "| " + s.Filter.String() }

// LabelFilter is a condition on the labels of a line: a *Matcher, a
// *NumberFilter, a *DurationFilter or a *LabelFilterBinary.
type LabelFilter interface {
	Node
	labelFilter()
}

func (*Matcher) labelFilter() {}

// CompareOp is a comparison of numbers and durations.
type CompareOp int

// The comparisons.
const (
	CmpEq CompareOp = iota // == (also written =)
	CmpNe                  // !=
	CmpGt                  // >
	CmpGe                  // >=
	CmpLt                  // <
	CmpLe                  // <=
)

var compareOpStrings = [...]string{"==", "!=", ">", ">=", "<", "<="}

func (o CompareOp) String() string { return compareOpStrings[o] }

// NumberFilter compares a label's value, read as a number.
type NumberFilter struct {
	Pos   Pos
	Name  string
	Op    CompareOp
	Value float64
}

func (*NumberFilter) labelFilter() {}

// Position returns where the label name is.
func (f *NumberFilter) Position() Pos { return f.Pos }

func (f *NumberFilter) String() string { return f.Name + f.Op.String() + formatFloat(f.Value) }

// DurationFilter compares a label's value, read as a Go duration.
type DurationFilter struct {
	Pos   Pos
	Name  string
	Op    CompareOp
	Value time.Duration
}

func (*DurationFilter) labelFilter() {}

// Position returns where the label name is.
func (f *DurationFilter) Position() Pos { return f.Pos }

// String prints the duration as Go does, but microseconds as "us": the
// lexer reads ASCII units only.
func (f *DurationFilter) String() string {
	return f.Name + f.Op.String() + strings.Replace(f.Value.String(), "µs", "us", 1)
}

// LabelFilterBinary is "and" or "or" of two label filters; a comma or
// plain juxtaposition means "and" and is printed so.
type LabelFilterBinary struct {
	Pos      Pos
	Or       bool
	LHS, RHS LabelFilter
}

func (*LabelFilterBinary) labelFilter() {}

// Position returns where the left operand starts.
func (f *LabelFilterBinary) Position() Pos { return f.Pos }

func (f *LabelFilterBinary) String() string {
	op := " and "
	if f.Or {
		op = " or "
	}
	prec := f.precedence()
	return labelOperand(f.LHS, prec, false) + op + labelOperand(f.RHS, prec, true)
}

func (f *LabelFilterBinary) precedence() int {
	if f.Or {
		return 1
	}
	return 2
}

// labelOperand parenthesizes an operand only where the tree differs from
// what precedence and left associativity would read, so that the printed
// form parses back to the same tree.
func labelOperand(f LabelFilter, parent int, right bool) string {
	if b, ok := f.(*LabelFilterBinary); ok {
		if p := b.precedence(); p < parent || right && p == parent {
			return "(" + f.String() + ")"
		}
	}
	return f.String()
}

// LineFormat rewrites the line with a Go template, kept as written.
type LineFormat struct {
	Pos      Pos
	Template string
}

func (*LineFormat) stage() {}

// Position returns where the '|' is.
func (f *LineFormat) Position() Pos { return f.Pos }

func (f *LineFormat) String() string { return "| line_format " + strconv.Quote(f.Template) }

// DropKeep drops the named labels (| drop) or keeps only them (| keep). A
// label given with a matcher is dropped or kept only when it matches.
type DropKeep struct {
	Pos    Pos
	Keep   bool
	Labels []DropKeepLabel
}

// DropKeepLabel is a label name, or a matcher on one.
type DropKeepLabel struct {
	Name    string
	Matcher *Matcher // nil for a bare name
}

func (*DropKeep) stage() {}

// Position returns where the '|' is.
func (d *DropKeep) Position() Pos { return d.Pos }

func (d *DropKeep) String() string {
	var b strings.Builder
	if d.Keep {
		b.WriteString("| keep ")
	} else {
		b.WriteString("| drop ")
	}
	for i, l := range d.Labels {
		if i > 0 {
			b.WriteString(", ")
		}
		if l.Matcher != nil {
			b.WriteString(l.Matcher.String())
		} else {
			b.WriteString(l.Name)
		}
	}
	return b.String()
}

// RangeOp is a function over the lines of a range.
type RangeOp string

// The range aggregations.
const (
	CountOverTime RangeOp = "count_over_time"
	Rate          RangeOp = "rate"
	BytesOverTime RangeOp = "bytes_over_time"
	BytesRate     RangeOp = "bytes_rate"
)

// RangeAggregation turns the lines of a log query in a sliding range into
// samples: count_over_time({app="x"}[5m] offset 1h).
type RangeAggregation struct {
	Pos    Pos
	Op     RangeOp
	Query  *LogQuery
	Range  time.Duration
	Offset time.Duration
}

func (*RangeAggregation) expr()       {}
func (*RangeAggregation) metricExpr() {}

// Position returns where the function name is.
func (r *RangeAggregation) Position() Pos { return r.Pos }

func (r *RangeAggregation) String() string {
	s := string(r.Op) + "(" + r.Query.String() + "[" + model.Duration(r.Range).String() + "]"
	if r.Offset != 0 {
		s += " offset " + formatOffset(r.Offset)
	}
	return s + ")"
}

func formatOffset(d time.Duration) string {
	if d < 0 {
		return "-" + model.Duration(-d).String()
	}
	return model.Duration(d).String()
}

// VectorOp is an aggregation across series.
type VectorOp string

// The vector aggregations.
const (
	Sum     VectorOp = "sum"
	Avg     VectorOp = "avg"
	Min     VectorOp = "min"
	Max     VectorOp = "max"
	Count   VectorOp = "count"
	Stddev  VectorOp = "stddev"
	Stdvar  VectorOp = "stdvar"
	Topk    VectorOp = "topk"
	Bottomk VectorOp = "bottomk"
)

// Grouping is by (...) or without (...).
type Grouping struct {
	Without bool
	Labels  []string
}

func (g *Grouping) String() string {
	kw := "by"
	if g.Without {
		kw = "without"
	}
	return kw + " (" + strings.Join(g.Labels, ", ") + ")"
}

// VectorAggregation aggregates the series of a metric expression:
// sum by (level) (...), topk(5, ...).
type VectorAggregation struct {
	Pos      Pos
	Op       VectorOp
	Grouping *Grouping // nil: aggregate everything
	Param    int       // k of topk and bottomk
	Expr     MetricExpr
}

func (*VectorAggregation) expr()       {}
func (*VectorAggregation) metricExpr() {}

// Position returns where the operator name is.
func (v *VectorAggregation) Position() Pos { return v.Pos }

func (v *VectorAggregation) String() string {
	var b strings.Builder
	b.WriteString(string(v.Op))
	if v.Grouping != nil {
		b.WriteByte(' ')
		b.WriteString(v.Grouping.String())
		b.WriteByte(' ')
	}
	b.WriteByte('(')
	if v.Op == Topk || v.Op == Bottomk {
		b.WriteString(strconv.Itoa(v.Param))
		b.WriteString(", ")
	}
	b.WriteString(v.Expr.String())
	b.WriteByte(')')
	return b.String()
}

// BinaryOp is an arithmetic, comparison or set operator between metric
// expressions.
type BinaryOp string

// The binary operators.
const (
	OpAdd    BinaryOp = "+"
	OpSub    BinaryOp = "-"
	OpMul    BinaryOp = "*"
	OpDiv    BinaryOp = "/"
	OpMod    BinaryOp = "%"
	OpPow    BinaryOp = "^"
	OpEq     BinaryOp = "=="
	OpNe     BinaryOp = "!="
	OpGt     BinaryOp = ">"
	OpGe     BinaryOp = ">="
	OpLt     BinaryOp = "<"
	OpLe     BinaryOp = "<="
	OpAnd    BinaryOp = "and"
	OpOr     BinaryOp = "or"
	OpUnless BinaryOp = "unless"
)

// IsComparison reports whether the operator compares, and so takes bool.
func (o BinaryOp) IsComparison() bool {
	switch o {
	case OpEq, OpNe, OpGt, OpGe, OpLt, OpLe:
		return true
	}
	return false
}

// BinaryExpr is LHS op RHS.
type BinaryExpr struct {
	Pos Pos
	Op  BinaryOp
	// ReturnBool is the bool modifier of a comparison: 0 or 1 instead of
	// filtering.
	ReturnBool bool
	LHS, RHS   MetricExpr
}

func (*BinaryExpr) expr()       {}
func (*BinaryExpr) metricExpr() {}

// Position returns where the left operand starts.
func (e *BinaryExpr) Position() Pos { return e.Pos }

func (e *BinaryExpr) String() string {
	op := " " + string(e.Op) + " "
	if e.ReturnBool {
		op += "bool "
	}
	prec := e.Op.precedence()
	// ^ is right-associative, every other operator left.
	rightAssoc := e.Op == OpPow
	return binaryOperand(e.LHS, prec, rightAssoc) + op + binaryOperand(e.RHS, prec, !rightAssoc)
}

// precedence orders the operators as PromQL does, lowest first.
func (o BinaryOp) precedence() int {
	switch o {
	case OpOr:
		return 1
	case OpAnd, OpUnless:
		return 2
	case OpEq, OpNe, OpGt, OpGe, OpLt, OpLe:
		return 3
	case OpAdd, OpSub:
		return 4
	case OpMul, OpDiv, OpMod:
		return 5
	default: // OpPow
		return 6
	}
}

// binaryOperand parenthesizes an operand where precedence and
// associativity would otherwise read the printed form as another tree;
// sameNeedsParens is true on the side an operator of equal precedence
// would not bind to.
func binaryOperand(e MetricExpr, parent int, sameNeedsParens bool) string {
	if b, ok := e.(*BinaryExpr); ok {
		if p := b.Op.precedence(); p < parent || sameNeedsParens && p == parent {
			return "(" + e.String() + ")"
		}
	}
	return e.String()
}

// NumberLiteral is a scalar.
type NumberLiteral struct {
	Pos   Pos
	Value float64
}

func (*NumberLiteral) expr()       {}
func (*NumberLiteral) metricExpr() {}

// Position returns where the number (or its minus sign) is.
func (n *NumberLiteral) Position() Pos { return n.Pos }

func (n *NumberLiteral) String() string { return formatFloat(n.Value) }

// VectorLiteral is vector(1): one series without labels.
type VectorLiteral struct {
	Pos   Pos
	Value float64
}

func (*VectorLiteral) expr()       {}
func (*VectorLiteral) metricExpr() {}

// Position returns where "vector" is.
func (v *VectorLiteral) Position() Pos { return v.Pos }

func (v *VectorLiteral) String() string { return "vector(" + formatFloat(v.Value) + ")" }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
