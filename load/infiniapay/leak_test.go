package infiniapay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine they started, or
// one the code under test started for them, is still running after the
// last test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
