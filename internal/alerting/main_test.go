package alerting

import (
	"testing"

	"go.uber.org/goleak"
)

// Every instance a test starts is stopped by then: Stop must end all of
// Alertmanager's goroutines (dispatcher, inhibitor, maintenance, alert GC).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
