package payprotocol

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/settlekit/settle/internal/pgtest"
)

// TestMain drops what pgtest made once the tests are done, then fails the
// package's tests when a goroutine they started, or one the code under
// test started for them, is still running after the last test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }
