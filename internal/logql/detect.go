package logql

import "github.com/prometheus/prometheus/model/labels"

// FieldDetector finds the fields of log lines as | json, or else
// | logfmt, would extract them: what Loki's detected_fields answers. It
// reuses its buffers from line to line, so it is not safe for concurrent
// use.
type FieldDetector struct {
	json *jsonScanner
	lbs  entryLabels
}

// NewFieldDetector returns a FieldDetector.
func NewFieldDetector() *FieldDetector {
	return &FieldDetector{json: &jsonScanner{names: map[string]string{}}}
}

// Detect parses line and calls field for each field found, with the
// parser that read the line ("json" or "logfmt") and the field's label
// name and value. A line that is a JSON object is read as JSON; any other
// line as logfmt, and one from which logfmt reads nothing yields nothing.
func (d *FieldDetector) Detect(line string, field func(parser, name, value string)) {
	d.lbs.reset(labels.EmptyLabels())
	parser := "json"
	if err := d.json.parse(line, &d.lbs); err != nil {
		d.lbs.reset(labels.EmptyLabels())
		parser = "logfmt"
		if _, ok := parseLogfmt(0, line, &d.lbs); !ok || d.lbs.hasErr() {
			return
		}
	}
	for i, name := range d.lbs.names {
		field(parser, name, d.lbs.values[i])
	}
}
