//go:build !slicelabels && !dedupelabels

package promremote

import "unsafe"

// labelString returns b as a string for labels.ScratchBuilder.Add without
// copying it: with the default (stringlabels) Labels, the builder copies
// every name and value into the Labels it returns, so the string may point
// into the request body, which is reused, until then.
func labelString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
