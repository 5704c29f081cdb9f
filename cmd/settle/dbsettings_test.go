package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// TestALedgerThatRefusesWritesIsConfiguration: the ledger's URL reaching
// a read replica by mistake, or a DBA's default_transaction_read_only on
// settle's role or database, refused every write ("cannot execute ... in a
// read-only transaction", 25006): that was exit 1, "a retry is safe", and
// the Job retried it to its deadline. It is exit 2, saying where to point
// the URL or what to turn off - at the migration of a new ledger and at
// the first write of one migrated already alike.
func TestALedgerThatRefusesWritesIsConfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	db := pq.QuoteIdentifier(strings.TrimPrefix(u.Path, "/"))
	e.db.MustExec(`ALTER DATABASE ` + db + ` SET default_transaction_read_only = on`)
	for _, migrated := range []bool{false, true} {
		if migrated {
			e.db.MustExec(`ALTER DATABASE ` + db + ` RESET default_transaction_read_only`)
			e.mustSettle("migrate")
			e.db.MustExec(`ALTER DATABASE ` + db + ` SET default_transaction_read_only = on`)
		}
		out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
		if code != 2 || !strings.Contains(out, "read-only") || !strings.Contains(out, "default_transaction_read_only") || strings.Contains(out, "running the same command again is safe") {
			t.Fatalf("migrated %v: exit %d, want 2 saying what refused the write:\n%s", migrated, code, out)
		}
	}
}
