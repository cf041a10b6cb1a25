package configcentre

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ErrNoValue is returned by Decode while an item has no value yet.
var ErrNoValue = errors.New("configcentre: no value yet")

// Decode decodes the content into dst: as JSON for content type "json",
// else as YAML (which reads JSON too). Unknown fields are ignored, so a
// new field in the item does not break older instances.
func (s Snapshot) Decode(dst any) error {
	if s.Version == 0 {
		return ErrNoValue
	}
	var err error
	if s.ContentType == "json" {
		err = json.NewDecoder(bytes.NewReader([]byte(s.Content))).Decode(dst)
	} else {
		err = yaml.Unmarshal([]byte(s.Content), dst)
	}
	if err != nil {
		return fmt.Errorf("configcentre: decoding version %d: %w", s.Version, err)
	}
	return nil
}

// Typed is a Value decoded into T at every change; see Of.
type Typed[T any] struct {
	v *Value
}

// Of wraps v so that Get and OnChange hand out T, decoded from the
// content (Snapshot.Decode).
func Of[T any](v *Value) Typed[T] { return Typed[T]{v: v} }

// Get decodes the current value; it fails while there is none or when it
// does not decode, with the zero T.
func (t Typed[T]) Get() (T, Snapshot, error) {
	var x T
	s := t.v.Get()
	err := s.Decode(&x)
	return x, s, err
}

// OnChange calls f with every value applied after this call that decodes
// into T; a value that does not decode is logged and skipped.
func (t Typed[T]) OnChange(f func(T, Snapshot)) {
	t.v.OnChange(func(s Snapshot) {
		var x T
		if err := s.Decode(&x); err != nil {
			t.v.c.opts.Logger.Warn("vigil config: value does not decode; not handed to the callback",
				"item", t.v.item, "version", s.Version, "error", err.Error())
			return
		}
		f(x, s)
	})
}
