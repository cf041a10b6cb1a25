//go:build slicelabels || dedupelabels

package promremote

// labelString copies b: the slicelabels and dedupelabels Labels keep the
// strings they are given, which must not point into the reused request
// body.
func labelString(b []byte) string { return string(b) }
