package doctor

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints a report for people: one block per finding, most
// urgent first.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	if len(r.Findings) == 0 {
		b.WriteString("No problems found.\n")
	}
	for i, f := range r.Findings {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", strings.ToUpper(string(f.Severity)), f.Code, f.Subject)
		fmt.Fprintf(&b, "  seen:  %s\n", f.Evidence.Summary)
		if len(f.Evidence.Samples) > 0 {
			fmt.Fprintf(&b, "         e.g. %s\n", strings.Join(f.Evidence.Samples, ", "))
		}
		fmt.Fprintf(&b, "  cause: %s\n", f.Cause)
		fmt.Fprintf(&b, "  fix:   %s\n", f.Fix)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\ncould not check: %s\n", e)
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "\nleft to the cluster's leader, which checks the shared store: %s\n", strings.Join(r.Skipped, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// HasCritical reports whether any finding is critical.
func (r Report) HasCritical() bool {
	for _, f := range r.Findings {
		if f.Severity == Critical {
			return true
		}
	}
	return false
}
