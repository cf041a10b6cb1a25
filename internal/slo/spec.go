// Package slo turns service level objectives into Prometheus recording and
// alerting rules. Specs are in Sloth's prometheus/v1 format, so existing
// Sloth files work unchanged and the generated series carry Sloth's names
// and labels (Sloth's dashboards read them); vigil adds span-based SLIs that
// need no PromQL, computed from the series vigil derives from spans.
//
// The alerts are the multi-window, multi-burn-rate alerts of the Google SRE
// workbook ("Alerting on SLOs"), over a 30-day SLO period.
package slo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// SpecVersion is the only spec version vigil reads: Sloth's.
const SpecVersion = "prometheus/v1"

// Spec is one service's SLOs: one Sloth prometheus/v1 document.
type Spec struct {
	Version string `yaml:"version"`
	Service string `yaml:"service"`
	// Labels go on every series and alert generated for the service.
	Labels map[string]string `yaml:"labels,omitempty"`
	SLOs   []SLO             `yaml:"slos"`
}

// SLO is one objective of a service.
type SLO struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	// Objective is the target in percent, in (0, 100], e.g. 99.9.
	Objective float64 `yaml:"objective"`
	// Labels are added to the spec's labels (and win over them).
	Labels   map[string]string `yaml:"labels,omitempty"`
	SLI      SLI               `yaml:"sli"`
	Alerting Alerting          `yaml:"alerting"`
}

// SLI says which events are bad. Exactly one of its fields is set.
type SLI struct {
	Events *EventsSLI `yaml:"events,omitempty"`
	Raw    *RawSLI    `yaml:"raw,omitempty"`
	Spans  *SpansSLI  `yaml:"spans,omitempty"`
}

// EventsSLI is a ratio of two queries: bad events over all events. Both
// queries are templates in which {{.window}} stands for the range of each
// generated window (5m, 30m, ...).
type EventsSLI struct {
	ErrorQuery string `yaml:"error_query"`
	TotalQuery string `yaml:"total_query"`
}

// RawSLI is a query that already yields the error ratio (0 to 1), a template
// with {{.window}} like EventsSLI's.
type RawSLI struct {
	ErrorRatioQuery string `yaml:"error_ratio_query"`
}

// SpansSLI is computed from the span metrics vigil records, counting only
// the spans that serve requests (kind SERVER or CONSUMER). Without a
// latency threshold the bad events are spans with status ERROR; with one
// they are spans slower than the threshold, which must be a bound of the
// span duration histogram (see LatencyBuckets).
type SpansSLI struct {
	// Service is the service.name of the spans; the spec's service when empty.
	Service string `yaml:"service,omitempty"`
	// Operation is the span name; all of the service's operations when empty.
	Operation        string   `yaml:"operation,omitempty"`
	LatencyThreshold Duration `yaml:"latency_threshold,omitempty"`
}

// Alerting configures the page and ticket alerts of an SLO.
type Alerting struct {
	// Name is the alert name of both alerts; required unless both are disabled.
	Name        string            `yaml:"name,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
	PageAlert   Alert             `yaml:"page_alert,omitempty"`
	TicketAlert Alert             `yaml:"ticket_alert,omitempty"`
}

// Alert is the page or the ticket alert. Its labels and annotations are
// added to the Alerting ones (and win over them).
type Alert struct {
	Disable     bool              `yaml:"disable,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Duration is a span latency threshold, written as Go ("300ms", "1.4s") or
// Prometheus ("1s400ms") durations.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		pd, perr := model.ParseDuration(s)
		if perr != nil {
			return fmt.Errorf("line %d: %q is not a duration such as 300ms or 1.4s", n.Line, s)
		}
		v = time.Duration(pd)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML decodes a spec strictly: a field vigil does not know is an
// error naming its path, whichever decoder options the caller uses.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkFields(n, reflect.TypeFor[Spec](), ""); err != nil {
		return err
	}
	type plain Spec // no UnmarshalYAML: plain decoding
	return n.Decode((*plain)(s))
}

// Parse reads specs from YAML: one spec, a list of specs, or several
// "---"-separated documents of either. The specs are validated.
func Parse(data []byte) ([]Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var specs []Spec
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		got, err := Decode(&n)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		specs = append(specs, got...)
	}
	if len(specs) == 0 {
		return nil, errors.New("no SLO spec found")
	}
	return specs, nil
}

// Decode reads and validates the specs in a YAML node: one spec (a mapping)
// or a list of them, as in the slos: section of vigil.yaml. An empty node
// holds no specs.
func Decode(n *yaml.Node) ([]Spec, error) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	var specs []Spec
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.MappingNode:
		var s Spec
		if err := n.Decode(&s); err != nil {
			return nil, err
		}
		specs = []Spec{s}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			var s Spec
			if err := item.Decode(&s); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			specs = append(specs, s)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		return nil, fmt.Errorf("line %d: want an SLO spec or a list of them, got %q", n.Line, n.Value)
	default:
		return nil, fmt.Errorf("line %d: want an SLO spec or a list of them", n.Line)
	}
	return specs, validateAll(specs)
}

// validateAll validates specs, each problem prefixed with its spec.
func validateAll(specs []Spec) error {
	var errs []error
	for i, s := range specs {
		err := s.Validate()
		if err == nil {
			continue
		}
		prefix := fmt.Sprintf("[%d] service %q: ", i, s.Service)
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				errs = append(errs, errors.New(prefix+e.Error()))
			}
		} else {
			errs = append(errs, errors.New(prefix+err.Error()))
		}
	}
	return errors.Join(errs...)
}

// unsupported are Sloth fields vigil knows of but does not implement.
var unsupported = map[string]string{
	"slo_plugins": "Sloth SLO plugins are not supported",
	"plugins":     "Sloth SLO plugins are not supported",
	"plugin":      "Sloth SLI plugins are not supported; use events, raw or spans",
}

// checkFields reports the first mapping key under n that has no field in
// t (a struct type), descending into nested structs and lists. Maps are
// free-form. Type mismatches are left to the decoder.
func checkFields(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			f, ok := fields[key.Value]
			if !ok {
				if why, ok := unsupported[key.Value]; ok {
					return fmt.Errorf("%s (line %d): %s", p, key.Line, why)
				}
				return fmt.Errorf("%s (line %d): unknown field %q; known fields: %s",
					p, key.Line, key.Value, strings.Join(sortedKeys(fields), ", "))
			}
			if err := checkFields(val, f, p); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nameRE is what a service or SLO name may look like: it becomes part of
// rule group names and of the sloth_id label.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// windowRE finds the window placeholder in an SLI query.
var windowRE = regexp.MustCompile(`{{ *\.window *}}`)

// reservedLabels are set by the generator; specs may not set them.
var reservedLabels = map[string]bool{
	labelID: true, labelService: true, labelSLO: true, labelWindow: true,
	labelSeverity: true, labelSpec: true, labelObjective: true, labelMode: true,
	"sloth_version": true,
}

// Validate reports every problem of the spec, each with its path.
func (s Spec) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if s.Version != SpecVersion {
		add("version", "must be %q, got %q", SpecVersion, s.Version)
	}
	if err := checkName(s.Service); err != nil {
		add("service", "%v", err)
	}
	checkLabels(s.Labels, "labels", add)
	if len(s.SLOs) == 0 {
		add("slos", "at least one SLO is required")
	}
	seen := map[string]bool{}
	for i, slo := range s.SLOs {
		p := fmt.Sprintf("slos[%d]", i)
		if slo.Name != "" {
			p = fmt.Sprintf("slos[%d] (%s)", i, slo.Name)
		}
		if err := checkName(slo.Name); err != nil {
			add(p+".name", "%v", err)
		} else if seen[slo.Name] {
			add(p+".name", "another SLO of the service has this name")
		}
		seen[slo.Name] = true
		if slo.Objective <= 0 || slo.Objective > 100 {
			add(p+".objective", "must be a percentage > 0 and <= 100 (e.g. 99.9), got %g", slo.Objective)
		}
		checkLabels(slo.Labels, p+".labels", add)
		checkSLI(slo.SLI, p+".sli", add)
		checkAlerting(slo.Alerting, p+".alerting", add)
	}
	return errors.Join(errs...)
}

type addFunc func(path, format string, args ...any)

func checkName(name string) error {
	if name == "" {
		return errors.New("is required")
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q must start and end with a letter or digit and hold only letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

func checkLabels(lbls map[string]string, path string, add addFunc) {
	for _, k := range sortedKeys(lbls) {
		v := lbls[k]
		switch {
		case k == model.MetricNameLabel || !model.UTF8Validation.IsValidLabelName(k):
			add(path, "%q is not a valid label name", k)
		case reservedLabels[k]:
			add(path, "label %q is set by the SLO generator and cannot be set here", k)
		case v == "" || !model.LabelValue(v).IsValid():
			add(path, "label %q needs a non-empty UTF-8 value", k)
		}
	}
}

func checkAnnotations(ann map[string]string, path string, add addFunc) {
	for _, k := range sortedKeys(ann) {
		if !model.UTF8Validation.IsValidLabelName(k) {
			add(path, "%q is not a valid annotation name", k)
		} else if ann[k] == "" {
			add(path, "annotation %q needs a value", k)
		}
	}
}

func checkSLI(sli SLI, path string, add addFunc) {
	n := 0
	for _, set := range []bool{sli.Events != nil, sli.Raw != nil, sli.Spans != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		add(path, "exactly one of events, raw or spans is required, got %d", n)
		return
	}
	switch {
	case sli.Events != nil:
		checkQuery(sli.Events.ErrorQuery, path+".events.error_query", add)
		checkQuery(sli.Events.TotalQuery, path+".events.total_query", add)
		if sli.Events.ErrorQuery != "" && strings.TrimSpace(sli.Events.ErrorQuery) == strings.TrimSpace(sli.Events.TotalQuery) {
			add(path+".events", "error_query and total_query are the same query")
		}
	case sli.Raw != nil:
		checkQuery(sli.Raw.ErrorRatioQuery, path+".raw.error_ratio_query", add)
	case sli.Spans != nil:
		if sli.Spans.Service != "" && !model.LabelValue(sli.Spans.Service).IsValid() {
			add(path+".spans.service", "is not valid UTF-8")
		}
		if sli.Spans.Operation != "" && !model.LabelValue(sli.Spans.Operation).IsValid() {
			add(path+".spans.operation", "is not valid UTF-8")
		}
		if d := time.Duration(sli.Spans.LatencyThreshold); d != 0 && bucketLabel(d) == "" {
			add(path+".spans.latency_threshold", "%s is not a bound of the span duration histogram; "+
				"latency SLIs count the spans above a bucket bound, one of %s", d, boundsList())
		}
	}
}

// checkQuery checks that an SLI query is a template with the window
// placeholder that renders to valid PromQL.
func checkQuery(q, path string, add addFunc) {
	if strings.TrimSpace(q) == "" {
		add(path, "is required")
		return
	}
	if !windowRE.MatchString(q) {
		add(path, "must contain the {{.window}} placeholder for the range, e.g. rate(x[{{.window}}])")
		return
	}
	rendered, err := render(q, "5m")
	if err != nil {
		add(path, "bad template: %v", err)
		return
	}
	if _, err := promqlParser.ParseExpr(rendered); err != nil {
		add(path, "not valid PromQL once {{.window}} is replaced: %v", err)
	}
}

// render replaces the window placeholder in an SLI query template. Other
// template data is an error, as in Sloth.
func render(query, window string) (string, error) {
	tpl, err := template.New("sli").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tpl.Execute(&b, map[string]string{"window": window}); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

var promqlParser = parser.NewParser(parser.Options{})

func checkAlerting(a Alerting, path string, add addFunc) {
	if a.Name == "" && !(a.PageAlert.Disable && a.TicketAlert.Disable) {
		add(path+".name", "is required unless page_alert and ticket_alert are both disabled")
	} else if !model.LabelValue(a.Name).IsValid() {
		add(path+".name", "%q is not valid UTF-8", a.Name)
	}
	checkLabels(a.Labels, path+".labels", add)
	checkAnnotations(a.Annotations, path+".annotations", add)
	for _, x := range []struct {
		name  string
		alert Alert
	}{{"page_alert", a.PageAlert}, {"ticket_alert", a.TicketAlert}} {
		checkLabels(x.alert.Labels, path+"."+x.name+".labels", add)
		checkAnnotations(x.alert.Annotations, path+"."+x.name+".annotations", add)
	}
}

// formatFloat writes a float as PromQL and Prometheus labels expect it,
// shortest form first.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
