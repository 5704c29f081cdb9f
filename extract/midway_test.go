package extract

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// TestRefusedMidwayIsTheQuerysError: an error the platform database gives
// on a later row of a query (rows.Err) is judged as one on its first
// (refused) when it is the query's - a write refused in the read-only
// transaction, a division by zero -, not when it is the server's own
// trouble (out of memory or temporary file space, an operator's
// intervention, a system or internal error) or no server's error at all:
// those stay a failure a retry may get past, as they were.
func TestRefusedMidwayIsTheQuerysError(t *testing.T) {
	for code, want := range map[string]bool{
		"25006": true, "22012": true, "42501": true,
		"53100": false, "53200": false, "57P01": false, "57014": false, "58030": false, "XX000": false, "55P03": false, "55000": true,
	} {
		err := fmt.Errorf("read orders: %w", &pq.Error{Code: pqerror.Code(code), Message: "test"})
		if got := refusedMidway(err); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
	for _, err := range []error{io.ErrUnexpectedEOF, errors.New("pq: unexpected DataRow after error")} {
		if refusedMidway(err) {
			t.Errorf("%v: judged as the query's", err)
		}
	}
}
