package logql

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/prometheus/prometheus/model/labels"
)

// The values of __error__ a stage sets instead of dropping the line, as
// Loki names them, so that queries written for Loki filter them alike.
const (
	errorLabel        = "__error__"
	errJSONParser     = "JSONParserErr"
	errLogfmtParser   = "LogfmtParserErr"
	errLabelFilter    = "LabelFilterErr"
	errTemplateFormat = "TemplateFormatErr"

	// extractedSuffix renames a parsed label that would shadow a stream
	// label, as Loki does.
	extractedSuffix = "_extracted"
)

// entryLabels are the labels of one entry as the pipeline works on them:
// the stream labels first (the base), then structured metadata and parsed
// labels. Entries carry a handful of labels, so a pair of slices scanned
// linearly beats a map and is reused from entry to entry without
// allocating.
type entryLabels struct {
	names, values []string
	base          int // how many leading labels are stream labels
}

func (l *entryLabels) reset(stream labels.Labels) {
	l.names, l.values = l.names[:0], l.values[:0]
	stream.Range(func(lb labels.Label) {
		l.names = append(l.names, lb.Name)
		l.values = append(l.values, lb.Value)
	})
	l.base = len(l.names)
}

func (l *entryLabels) index(name string) int {
	for i, n := range l.names {
		if n == name {
			return i
		}
	}
	return -1
}

func (l *entryLabels) get(name string) (string, bool) {
	if i := l.index(name); i >= 0 {
		return l.values[i], true
	}
	return "", false
}

// set sets a label, replacing its value if it is there.
func (l *entryLabels) set(name, value string) {
	if i := l.index(name); i >= 0 {
		l.values[i] = value
		return
	}
	l.names = append(l.names, name)
	l.values = append(l.values, value)
}

// add sets a label that is not a stream label (structured metadata, a
// parsed label), renaming it when a stream label has its name.
func (l *entryLabels) add(name, value string) {
	if slices.Contains(l.names[:l.base], name) {
		name += extractedSuffix
	}
	l.set(name, value)
}

func (l *entryLabels) del(i int) {
	l.names = slices.Delete(l.names, i, i+1)
	l.values = slices.Delete(l.values, i, i+1)
	if i < l.base {
		l.base--
	}
}

// group keeps only the labels of a by grouping, or drops those of a
// without grouping.
func (l *entryLabels) group(g *Grouping) {
	n, base := 0, 0
	for i, name := range l.names {
		if slices.Contains(g.Labels, name) != g.Without {
			l.names[n], l.values[n] = name, l.values[i]
			n++
			if i < l.base {
				base++
			}
		}
	}
	l.names, l.values, l.base = l.names[:n], l.values[:n], base
}

func (l *entryLabels) hasErr() bool {
	_, ok := l.get(errorLabel)
	return ok
}

func (l *entryLabels) setErr(v string) {
	// The first error sticks, as in Loki: later stages do not hide the
	// cause.
	if !l.hasErr() {
		l.set(errorLabel, v)
	}
}

// key appends a canonical encoding of the labels to buf, sorted by name,
// to find the entry's output stream or series without building a
// labels.Labels for every entry. The separators 0xff and 0xfe never occur
// in UTF-8 text.
func (l *entryLabels) key(buf []byte, order []int) ([]byte, []int) {
	order = order[:0]
	for i := range l.names {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(l.names[a], l.names[b]) })
	for _, i := range order {
		buf = append(buf, l.names[i]...)
		buf = append(buf, 0xff)
		buf = append(buf, l.values[i]...)
		buf = append(buf, 0xfe)
	}
	return buf, order
}

func (l *entryLabels) labels() labels.Labels {
	b := labels.NewScratchBuilder(len(l.names))
	for i, n := range l.names {
		b.Add(n, l.values[i])
	}
	b.Sort()
	return b.Labels()
}

// stageFunc runs one stage on a line and its labels; it returns the line
// (line_format rewrites it) and whether the line is kept.
type stageFunc func(ts int64, line string, lbs *entryLabels) (string, bool)

// pipeline is a log query's stages, compiled.
type pipeline struct {
	stages []stageFunc
	// filters is true when a stage may drop lines, so that the source
	// cannot be asked for just as many entries as the answer needs.
	filters bool
	// contains are the literals of the |= filters before any line_format,
	// lines must hold them: pushed down to the source as a prefilter.
	contains []string
}

func (p *pipeline) process(ts int64, line string, lbs *entryLabels) (string, bool) {
	for _, s := range p.stages {
		var ok bool
		if line, ok = s(ts, line, lbs); !ok {
			return line, false
		}
	}
	return line, true
}

// compilePipeline turns the stages of a log query into functions.
func compilePipeline(q *LogQuery) (*pipeline, error) {
	p := &pipeline{}
	formatted := false
	for _, st := range q.Pipeline {
		switch st := st.(type) {
		case *LineFilter:
			if st.Op == FilterContains && st.Value == "" {
				continue // what Grafana's builder leaves: keeps every line
			}
			if st.Op == FilterContains && !formatted {
				p.contains = append(p.contains, st.Value)
			}
			p.filters = true
			p.stages = append(p.stages, func(_ int64, line string, _ *entryLabels) (string, bool) {
				return line, st.Matches(line)
			})
		case *Parser:
			s, err := compileParser(st)
			if err != nil {
				return nil, err
			}
			p.stages = append(p.stages, s)
		case *LabelFilterStage:
			f := compileLabelFilter(st.Filter)
			p.filters = true
			p.stages = append(p.stages, func(_ int64, line string, lbs *entryLabels) (string, bool) {
				return line, f(lbs)
			})
		case *LineFormat:
			s, err := compileLineFormat(st)
			if err != nil {
				return nil, err
			}
			formatted = true
			p.stages = append(p.stages, s)
		case *DropKeep:
			p.stages = append(p.stages, compileDropKeep(st))
		default:
			return nil, fmt.Errorf("%w: pipeline stage %s", ErrUnsupported, st)
		}
	}
	return p, nil
}

// compileLabelFilter follows Loki: a string matcher reads a missing label
// as ""; a number or duration filter drops a line without the label, keeps
// one that already has an error (only string matchers filter those) and
// marks one whose value does not parse with LabelFilterErr, keeping it.
func compileLabelFilter(f LabelFilter) func(*entryLabels) bool {
	switch f := f.(type) {
	case *Matcher:
		return func(lbs *entryLabels) bool {
			v, _ := lbs.get(f.Name)
			return f.Matches(v)
		}
	case *NumberFilter:
		return func(lbs *entryLabels) bool {
			if lbs.hasErr() {
				return true
			}
			v, ok := lbs.get(f.Name)
			if !ok {
				return false
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				lbs.setErr(errLabelFilter)
				return true
			}
			return compare(f.Op, n, f.Value)
		}
	case *DurationFilter:
		return func(lbs *entryLabels) bool {
			if lbs.hasErr() {
				return true
			}
			v, ok := lbs.get(f.Name)
			if !ok {
				return false
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				lbs.setErr(errLabelFilter)
				return true
			}
			return compare(f.Op, float64(d), float64(f.Value))
		}
	case *LabelFilterBinary:
		lhs, rhs := compileLabelFilter(f.LHS), compileLabelFilter(f.RHS)
		if f.Or {
			return func(lbs *entryLabels) bool { return lhs(lbs) || rhs(lbs) }
		}
		return func(lbs *entryLabels) bool { return lhs(lbs) && rhs(lbs) }
	}
	// The parser builds no other filter.
	panic(fmt.Sprintf("logql: unknown label filter %T", f))
}

func compare(op CompareOp, a, b float64) bool {
	switch op {
	case CmpEq:
		return a == b
	case CmpNe:
		return a != b
	case CmpGt:
		return a > b
	case CmpGe:
		return a >= b
	case CmpLt:
		return a < b
	default:
		return a <= b
	}
}

func compileDropKeep(d *DropKeep) stageFunc {
	// matches reports whether the stage names the label i.
	matches := func(lbs *entryLabels, i int) bool {
		for _, l := range d.Labels {
			if l.Name == lbs.names[i] && (l.Matcher == nil || l.Matcher.Matches(lbs.values[i])) {
				return true
			}
		}
		return false
	}
	return func(_ int64, line string, lbs *entryLabels) (string, bool) {
		for i := 0; i < len(lbs.names); {
			if matches(lbs, i) != d.Keep {
				lbs.del(i)
				continue
			}
			i++
		}
		return line, true
	}
}

// sanitizeLabelName makes a parsed key a valid label name as Loki does:
// every character but ASCII letters, digits and '_' becomes '_', and a
// leading digit gets a '_' before it.
func sanitizeLabelName(key string) string {
	ok := key != "" && !(key[0] >= '0' && key[0] <= '9')
	for i := 0; ok && i < len(key); i++ {
		ok = isLabelChar(key[i])
	}
	if ok {
		return key
	}
	return string(appendSanitized(nil, key))
}

func isLabelChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// compileParser returns | logfmt, or | json: every string, number and
// boolean of the line's JSON object, nested keys joined with '_' as Loki
// does, arrays and nulls left out as Loki leaves them (of keys that
// flatten to one name the last wins); or with parameters, the values at
// their paths.
func compileParser(p *Parser) (stageFunc, error) {
	switch p.Kind {
	case "logfmt":
		return parseLogfmt, nil
	case "json":
		if len(p.Params) == 0 {
			sc := &jsonScanner{names: map[string]string{}}
			return func(_ int64, line string, lbs *entryLabels) (string, bool) {
				if err := sc.parse(line, lbs); err != nil {
					lbs.setErr(errJSONParser)
				}
				return line, true
			}, nil
		}
		paths := make([][]any, len(p.Params))
		for i, prm := range p.Params {
			path, err := parseJSONPath(prm.Path)
			if err != nil {
				return nil, fmt.Errorf("%w: | json %s=%q: %w", ErrUnsupported, prm.Label, prm.Path, err)
			}
			paths[i] = path
		}
		return func(_ int64, line string, lbs *entryLabels) (string, bool) {
			v, ok := decodeJSON(line)
			if !ok {
				lbs.setErr(errJSONParser)
				return line, true
			}
			for i, prm := range p.Params {
				lbs.add(sanitizeLabelName(prm.Label), jsonPathValue(v, paths[i]))
			}
			return line, true
		}, nil
	}
	return nil, fmt.Errorf("%w: parser %s", ErrUnsupported, p.Kind)
}

func decodeJSON(line string) (map[string]any, bool) {
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber() // numbers keep the text they were written with
	var v map[string]any
	if err := d.Decode(&v); err != nil || v == nil {
		return nil, false
	}
	if _, err := d.Token(); err == nil {
		return nil, false // more than one value on the line
	}
	return v, true
}

// parseJSONPath reads Loki's JSON path expressions: a.b, a[0], a["b c"].
func parseJSONPath(s string) ([]any, error) {
	var path []any
	for i := 0; i < len(s); {
		switch {
		case s[i] == '.':
			i++
		case s[i] == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, errors.New("unclosed [")
			}
			inner := s[i+1 : i+end]
			if n, err := strconv.Atoi(inner); err == nil {
				path = append(path, n)
			} else if k, err := strconv.Unquote(inner); err == nil {
				path = append(path, k)
			} else {
				return nil, fmt.Errorf("bad index %s", inner)
			}
			i += end + 1
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			path = append(path, s[i:j])
			i = j
		}
	}
	if len(path) == 0 {
		return nil, errors.New("empty path")
	}
	return path, nil
}

// jsonPathValue is the value at path as a label value: strings unquoted,
// objects and arrays as JSON, a missing value or null as "".
func jsonPathValue(v any, path []any) string {
	for _, step := range path {
		switch step := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return ""
			}
			v = m[step]
		case int:
			a, ok := v.([]any)
			if !ok || step < 0 || step >= len(a) {
				return ""
			}
			v = a[step]
		}
	}
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// parseLogfmt extracts key=value pairs; a bare key has the value "". A
// line that is not logfmt (an unterminated quote, a value without a key)
// keeps what was read before the fault and gets LogfmtParserErr.
func parseLogfmt(_ int64, line string, lbs *entryLabels) (string, bool) {
	s := line
	for {
		for s != "" && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n') {
			s = s[1:]
		}
		if s == "" {
			return line, true
		}
		i := 0
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '"' {
			i++
		}
		key := s[:i]
		if key == "" {
			lbs.setErr(errLogfmtParser)
			return line, true
		}
		s = s[i:]
		value := ""
		if s != "" && s[0] == '=' {
			s = s[1:]
			if s != "" && s[0] == '"' {
				end, ok := quotedEnd(s)
				if !ok {
					lbs.setErr(errLogfmtParser)
					return line, true
				}
				v, err := strconv.Unquote(s[:end])
				if err != nil {
					v = s[1 : end-1]
				}
				value, s = v, s[end:]
			} else {
				j := 0
				for j < len(s) && s[j] != ' ' && s[j] != '\t' {
					j++
				}
				value, s = s[:j], s[j:]
			}
		} else if s != "" && s[0] == '"' {
			lbs.setErr(errLogfmtParser)
			return line, true
		}
		if name := sanitizeLabelName(key); name != "" {
			lbs.add(name, value)
		}
	}
}

// quotedEnd returns the end of the quoted string s starts with.
func quotedEnd(s string) (int, bool) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// templateFuncs are the Loki template functions cheap to offer; Loki's
// take the value last so that they chain in pipes ({{ .a | trimPrefix "x" }}).
var templateFuncs = template.FuncMap{
	"ToUpper":    strings.ToUpper,
	"ToLower":    strings.ToLower,
	"upper":      strings.ToUpper,
	"lower":      strings.ToLower,
	"title":      title,
	"trim":       strings.TrimSpace,
	"trimSpace":  strings.TrimSpace,
	"trimAll":    func(cut, s string) string { return strings.Trim(s, cut) },
	"trimPrefix": func(p, s string) string { return strings.TrimPrefix(s, p) },
	"trimSuffix": func(p, s string) string { return strings.TrimSuffix(s, p) },
	"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
	"hasPrefix":  func(p, s string) bool { return strings.HasPrefix(s, p) },
	"hasSuffix":  func(p, s string) bool { return strings.HasSuffix(s, p) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"repeat":     func(n int, s string) string { return strings.Repeat(s, max(n, 0)) },
	"default": func(d string, v ...string) string {
		if len(v) == 0 || v[0] == "" {
			return d
		}
		return v[0]
	},
	"substr": func(start, end int, s string) string {
		start, end = max(start, 0), min(end, len(s))
		if end < 0 || end > len(s) {
			end = len(s)
		}
		if start > end {
			return ""
		}
		return s[start:end]
	},
	"regexReplaceAll": func(re, s, repl string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllString(s, repl), nil
	},
	"date":      func(layout string, t time.Time) string { return t.UTC().Format(layout) },
	"unixEpoch": func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
	// __line__ and __timestamp__ are replaced per entry.
	"__line__":      func() string { return "" },
	"__timestamp__": func() time.Time { return time.Time{} },
}

// title upper-cases the first letter of each word, as Loki's title
// (strings.Title) does for the ASCII and Latin text of log lines.
func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || unicode.IsPunct(prev) && prev != '\'' {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// compileLineFormat compiles the template once; a failing execution
// keeps the line and sets TemplateFormatErr, as Loki does.
func compileLineFormat(f *LineFormat) (stageFunc, error) {
	tmpl, err := template.New("line_format").Option("missingkey=zero").Funcs(templateFuncs).Parse(f.Template)
	if err != nil {
		return nil, fmt.Errorf("%w: line_format template: %w", ErrBadQuery, err)
	}
	var (
		buf  bytes.Buffer
		data = map[string]string{}
		cur  struct {
			line string
			ts   int64
		}
	)
	// Funcs on a parsed template replace the functions it calls, so that
	// __line__ and __timestamp__ read the entry being formatted.
	tmpl.Funcs(template.FuncMap{
		"__line__":      func() string { return cur.line },
		"__timestamp__": func() time.Time { return time.Unix(0, cur.ts) },
	})
	return func(ts int64, line string, lbs *entryLabels) (string, bool) {
		clear(data)
		for i, n := range lbs.names {
			data[n] = lbs.values[i]
		}
		cur.line, cur.ts = line, ts
		buf.Reset()
		if err := tmpl.Execute(&buf, data); err != nil {
			lbs.setErr(errTemplateFormat)
			return line, true
		}
		return buf.String(), true
	}, nil
}
