package memory_test

import (
	"testing"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/memory"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunSpanLogStore(t, func(t *testing.T) storage.SpanLogStore {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestProfileConformance(t *testing.T) {
	storagetest.RunProfileStore(t, func(t *testing.T) storage.ProfileStore { return memory.NewProfileStore() })
}
