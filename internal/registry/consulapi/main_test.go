package consulapi

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any leaves a goroutine behind: a
// probe, an expiry loop or a blocking query that outlives its stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
