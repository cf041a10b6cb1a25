package configcentre

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

var printer = message.NewPrinter(language.English)

// MaxSchemaBytes bounds an item's schema.
const MaxSchemaBytes = 64 << 10

// schemaURL names every item's schema inside its compiler; nothing is
// loaded from it.
const schemaURL = "vigil:///schema.json"

// Schema is an item's compiled JSON Schema.
type Schema struct {
	raw string
	s   *jsonschema.Schema
}

// noLoader refuses every $ref outside the schema itself: a schema may not
// make vigil read files or fetch URLs.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("$ref %s: a schema may only refer to itself", url)
}

// CompileSchema parses and compiles a JSON Schema (draft 2020-12 unless
// its $schema names another draft; "format" is an annotation, as the
// draft says). A schema that does not compile is refused with ErrInvalid.
func CompileSchema(raw string) (*Schema, error) {
	if len(raw) > MaxSchemaBytes {
		return nil, fmt.Errorf("%w: schema of %d bytes, the limit is %d", ErrTooLarge, len(raw), MaxSchemaBytes)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: schema is not JSON: %v", ErrInvalid, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("%w: schema: %v", ErrInvalid, err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("%w: schema: %v", ErrInvalid, err)
	}
	return &Schema{raw: raw, s: s}, nil
}

// Validate checks content of type t against the schema: JSON as its
// value, YAML as each of its documents (read as JSON would read them),
// text as one JSON string. A violation is ErrInvalid with the reason.
func (s *Schema) Validate(t ContentType, content string) error {
	var docs []any
	switch t {
	case TypeJSON:
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(content))
		if err != nil {
			return fmt.Errorf("%w: content is not JSON: %v", ErrInvalid, err)
		}
		docs = append(docs, v)
	case TypeYAML:
		dec := yaml.NewDecoder(strings.NewReader(content))
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: content is not YAML: %v", ErrInvalid, err)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("%w: YAML content cannot be checked against the schema: %v", ErrInvalid, err)
			}
			jv, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%w: YAML content cannot be checked against the schema: %v", ErrInvalid, err)
			}
			docs = append(docs, jv)
		}
	default:
		docs = append(docs, content)
	}
	for i, d := range docs {
		if err := s.s.Validate(d); err != nil {
			var ve *jsonschema.ValidationError
			msg := err.Error()
			if errors.As(err, &ve) {
				msg = oneLine(ve)
			}
			if len(docs) > 1 {
				return fmt.Errorf("%w: YAML document %d does not match the item's schema: %s", ErrInvalid, i+1, msg)
			}
			return fmt.Errorf("%w: content does not match the item's schema: %s", ErrInvalid, msg)
		}
	}
	return nil
}

// oneLine is a validation error's leaf causes, each with its location,
// on one line.
func oneLine(ve *jsonschema.ValidationError) string {
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	// The validator visits an object's properties in map order: sorted,
	// the same content is refused with the same words every time.
	slices.Sort(out)
	return strings.Join(out, "; ")
}
