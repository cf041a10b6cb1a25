package logql

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestJSONScanner(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"a":"x","b":1.5e3,"c":true,"d":false,"e":null,"f":[1,{"g":2},[]],"h":{}}`, `{a="x", b="1.5e3", c="true", d="false"}`},
		{` {"a" : { "b" : {"c-d": "e"} } , "a_b_c_d": "last"} `, `{a_b_c_d="last"}`},
		{`{"esc":"q\"\u00e9\n","1x":-2,"":"nameless","k y":{"":1}}`, `{_1x="-2", esc="q\"é\n", k_y_="1"}`},
		{`{}`, `{}`},
		{`{"a":1} x`, `{__error__="JSONParserErr", a="1"}`},
		{`{"a":1,}`, `{__error__="JSONParserErr", a="1"}`},
		{`{"a":"open}`, `{__error__="JSONParserErr"}`},
		{`["not","an object"]`, `{__error__="JSONParserErr"}`},
		{`{"a":[1,2}`, `{__error__="JSONParserErr"}`},
		{`{"a" 1}`, `{__error__="JSONParserErr"}`},
		{`{"a":nul}`, `{__error__="JSONParserErr"}`},
		{`plain text`, `{__error__="JSONParserErr"}`},
	} {
		var l entryLabels
		l.reset(labels.EmptyLabels())
		if err := parseJSONLine(tc.line, &l, nil); err != nil {
			l.setErr(errJSONParser)
		}
		if got := l.labels().String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.line, got, tc.want)
		}
	}
}

func TestJSONScannerDepth(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxJSONDepth+1)
	for _, line := range []string{deep + "1", `{"a":` + strings.Repeat("[", maxJSONDepth+1)} {
		if err := parseJSONLine(line, &entryLabels{}, nil); err == nil {
			t.Errorf("a line nested %d deep parsed", maxJSONDepth+1)
		}
	}
}

// flattenJSON is the reference the scanner is held to: encoding/json's
// tree, flattened as Loki flattens it. It reports false when two keys
// flatten to one name, where the map's order would decide.
func flattenJSON(out map[string]string, prefix string, obj map[string]any) bool {
	for k, v := range obj {
		name := sanitizeLabelName(k)
		if prefix != "" {
			name = prefix + "_" + name
		}
		var s string
		switch v := v.(type) {
		case map[string]any:
			if !flattenJSON(out, name, v) {
				return false
			}
			continue
		case string:
			s = v
		case json.Number:
			s = string(v)
		case bool:
			s = strconv.FormatBool(v)
		default:
			continue
		}
		if _, dup := out[name]; dup || name == "" {
			return false
		}
		out[name] = s
	}
	return true
}

// FuzzJSONScanner checks that every valid JSON object is read as
// encoding/json reads it. The scanner is laxer than encoding/json about
// what it accepts (numbers are taken as written), which Loki's parser is
// too.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","b":{"c":[1,{"d":2}],"e":null},"f":true}`,
		`{"esc":"\u00e9\\\"","n":-1.5E-3}`,
		`{"a.b":1,"c d":{"e":"f"}}`,
		`{"":{"":""}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var l entryLabels
		err := parseJSONLine(line, &l, map[string]string{})
		if !json.Valid([]byte(line)) {
			return
		}
		var tree map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if d.Decode(&tree) != nil || tree == nil {
			return // not an object
		}
		if err != nil {
			t.Fatalf("valid JSON object %q: %v", line, err)
		}
		want := map[string]string{}
		if !flattenJSON(want, "", tree) {
			return
		}
		got := map[string]string{}
		for i, n := range l.names {
			got[n] = l.values[i]
		}
		if len(got) != len(want) {
			t.Fatalf("%q: labels %v, want %v", line, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%q: labels %v, want %v", line, got, want)
			}
		}
	})
}
