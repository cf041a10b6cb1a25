package kubernetes_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Discovery's informers, their watches and the scrape loops end when the
// scrape manager stops; a goroutine left behind would keep reading a fake
// API server that is gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
