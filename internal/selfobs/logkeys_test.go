package selfobs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLoggerWritesEachKeyOnce: a key repeated by With, by a nested With or
// by the record itself is written once, with the latest value; keys inside
// a group are the group's own.
func TestLoggerWritesEachKeyOnce(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string // the line without time and level
	}{
		{"component named twice", func(l *slog.Logger) {
			l.With("component", "alertmanager").With("component", "dispatcher").Info("m", "n", 1)
		}, `"msg":"m","component":"dispatcher","n":1`},
		{"record repeats a With key", func(l *slog.Logger) {
			l.With("service", "gateway").Info("m", "service", "gateway")
		}, `"msg":"m","service":"gateway"`},
		{"record repeats its own key", func(l *slog.Logger) {
			l.Info("m", "k", 1, "k", 2)
		}, `"msg":"m","k":2`},
		{"distinct keys keep their order", func(l *slog.Logger) {
			l.With("a", 1).With("b", 2).Info("m", "c", 3)
		}, `"msg":"m","a":1,"b":2,"c":3`},
		{"a group has its own keys", func(l *slog.Logger) {
			l.With("component", "x").WithGroup("g").With("component", "y").Info("m", "component", "z")
		}, `"msg":"m","component":"x","g":{"component":"y","component":"z"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(NewLogger(&buf, slog.LevelInfo))
			line := strings.TrimSpace(buf.String())
			if !json.Valid([]byte(line)) {
				t.Fatalf("not JSON: %s", line)
			}
			if i := strings.Index(line, `"msg"`); i < 0 || line[i:len(line)-1] != tc.want {
				t.Errorf("got  %s\nwant {...,%s}", line, tc.want)
			}
		})
	}
}
