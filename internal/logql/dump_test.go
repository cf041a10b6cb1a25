package logql

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// dump prints a syntax tree field by field, for golden files and for
// comparing trees; withPos false leaves positions out, so that a query and
// its canonical form compare equal.
func dump(n any, withPos bool) string {
	var b strings.Builder
	dumpValue(&b, reflect.ValueOf(n), 0, withPos)
	return b.String()
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	posType      = reflect.TypeFor[Pos]()
)

func dumpValue(b *strings.Builder, v reflect.Value, depth int, withPos bool) {
	indent := strings.Repeat("  ", depth)
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil\n")
			return
		}
		dumpValue(b, v.Elem(), depth, withPos)
	case reflect.Struct:
		fmt.Fprintf(b, "%s\n", v.Type().Name())
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Type == posType && !withPos {
				continue
			}
			fmt.Fprintf(b, "%s  %s: ", indent, f.Name)
			dumpValue(b, v.Field(i), depth+1, withPos)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			b.WriteString("[]\n")
			return
		}
		b.WriteString("\n")
		for i := range v.Len() {
			fmt.Fprintf(b, "%s  - ", indent)
			dumpValue(b, v.Index(i), depth+1, withPos)
		}
	case reflect.String:
		fmt.Fprintf(b, "%s\n", strconv.Quote(v.String()))
	default:
		if v.Type() == durationType {
			fmt.Fprintf(b, "%s\n", time.Duration(v.Int()))
			return
		}
		if v.Type() == posType {
			fmt.Fprintf(b, "@%d\n", v.Int())
			return
		}
		if s, ok := v.Interface().(fmt.Stringer); ok {
			fmt.Fprintf(b, "%s\n", s)
			return
		}
		fmt.Fprintf(b, "%v\n", v.Interface())
	}
}
