package selfobs

import (
	"context"
	"log/slog"
	"slices"
)

// uniqueKeys is a slog.Handler that writes each top-level key once. vigil
// names a component's logger (With("component", "alertmanager")) and the
// libraries it embeds name their parts again (Alertmanager's dispatcher adds
// "component":"dispatcher"); slog's JSON handler would write both, and JSON
// with a repeated key is read differently by different tools. The later
// attribute replaces the earlier one, as most JSON readers would take it.
// Attributes inside a group (after WithGroup) are passed on as they are.
type uniqueKeys struct {
	next slog.Handler
	// attrs are the top-level attributes added by WithAttrs, not yet given
	// to next; nil once a group is open (then next has them).
	attrs []slog.Attr
	// grouped: WithGroup was called, so records' attributes belong to a
	// group and no longer share the top level.
	grouped bool
}

func (h *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	if h.grouped || (len(h.attrs) == 0 && !repeatsKey(r)) {
		return h.next.Handle(ctx, r)
	}
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = setAttr(attrs, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

func (h *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	if h.grouped {
		return &uniqueKeys{next: h.next.WithAttrs(as), grouped: true}
	}
	attrs := slices.Clone(h.attrs)
	for _, a := range as {
		attrs = setAttr(attrs, a)
	}
	return &uniqueKeys{next: h.next, attrs: attrs}
}

func (h *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	next := h.next
	if len(h.attrs) > 0 {
		next = next.WithAttrs(h.attrs)
	}
	return &uniqueKeys{next: next.WithGroup(name), grouped: true}
}

// setAttr puts a into attrs, replacing an attribute of the same key. An
// empty key is kept as it is: slog inlines an empty-keyed group's members.
func setAttr(attrs []slog.Attr, a slog.Attr) []slog.Attr {
	if a.Key != "" {
		if i := slices.IndexFunc(attrs, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			attrs[i] = a
			return attrs
		}
	}
	return append(attrs, a)
}

// repeatsKey reports whether r's own attributes repeat a key.
func repeatsKey(r slog.Record) bool {
	if r.NumAttrs() < 2 {
		return false
	}
	seen := make(map[string]bool, r.NumAttrs())
	repeated := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "" && seen[a.Key] {
			repeated = true
			return false
		}
		seen[a.Key] = true
		return true
	})
	return repeated
}
