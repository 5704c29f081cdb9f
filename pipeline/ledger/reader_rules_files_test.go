package ledger_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestARoleThatReadsRunsFromBefore00030ReadsADatesStatus: a role that may
// read the ledger's runs, granted SELECT on its tables before 00030 (as
// README "Roles" has them granted once), reads a date's status once the
// ledger is migrated. A date's status reads its reprices with their rules
// files' names (RepricesOf joins rules_files), and 00030 granted
// rules_files to the roles that may open a run alone: before 00038 granted
// it to those that read runs too, such a role's settle status of any date
// was "permission denied for table rules_files" (only status --rules was,
// before settle reprice).
func TestARoleThatReadsRunsFromBefore00030ReadsADatesStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := pgtest.URL(t)
	l, err := ledger.Open(ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.MigrateTo(ctx, 29); err != nil {
		t.Fatal(err)
	}
	role := "settle_t_reader_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	for _, q := range []string{`CREATE ROLE ` + role + ` LOGIN`, `GRANT USAGE ON SCHEMA ` + ledger.DefaultSchema + ` TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA ` + ledger.DefaultSchema + ` TO ` + role} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		l.DB().Exec(`DROP OWNED BY ` + role)
		l.DB().Exec(`DROP ROLE ` + role)
	})
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ru, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	ru.User = url.User(role)
	r, err := ledger.Open(ctx, ru.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.DateStatus(ctx, day); err != nil {
		t.Fatalf("a role that reads runs, granted before 00030, reads a date's status: %v", err)
	}
}
