package raft

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	tests := []struct {
		name string
		log  func()
		want string // "" when nothing may be written
	}{
		{"info with args", func() { l.Info("elected", "term", 3) }, "level=INFO msg=elected term=3"},
		{"warn", func() { l.Warn("slow") }, "level=WARN msg=slow"},
		{"error", func() { l.Error("lost") }, "level=ERROR msg=lost"},
		{"debug", func() { l.Debug("detail") }, "level=DEBUG msg=detail"},
		{"trace is below debug", func() { l.Trace("per rpc") }, ""},
		{"named and with", func() { l.Named("raft").Named("net").With("peer", "n2").Info("dial") }, "msg=dial component=raft.net peer=n2"},
		{"standard logger", func() { l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}).Print("legacy line") }, `level=WARN msg="legacy line"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			tc.log()
			got := buf.String()
			if tc.want == "" {
				if got != "" {
					t.Errorf("wrote %q", got)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("wrote %q, want it to contain %q", got, tc.want)
			}
		})
	}
	if l.IsTrace() || !l.IsDebug() || l.GetLevel() != hclog.Debug {
		t.Errorf("levels: trace %v debug %v level %v", l.IsTrace(), l.IsDebug(), l.GetLevel())
	}
}
