package snapshot

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any leaves a goroutine behind: an
// instance's request that outlives its capture.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
