package guard

import (
	"testing"

	"go.uber.org/goleak"
)

// Run returns only once its ticker has stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
