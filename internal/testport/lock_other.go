//go:build !unix

package testport

// Elsewhere ports are unique within the process only.
func lockAcrossProcesses(int) bool { return true }
