package main

import (
	"strings"
	"testing"
)

// TestRollbackReport: the older settle's last run is judged by whether
// this tree migrated the ledger past what the older knows. A release with
// no migration between it and this tree runs on its own schema: a quiet
// date ends 4 (or 0) and that is no failure (the campaign against
// yesterday's release reported it as one on every seed).
func TestRollbackReport(t *testing.T) {
	calls := "files 567, revenue-sharing/request 506, orders 759, orders/unfreeze 24"
	moved := "files 567, revenue-sharing/request 507, orders 759, orders/unfreeze 24"
	for _, tc := range []struct {
		name          string
		oldV, v       int64
		exit          int
		before, after string
		want          string // a fragment of the report; "" for none
	}{
		{"same schema, quiet date ends 4", 36, 36, 4, calls, calls, ""},
		{"same schema, quiet date ends 0", 36, 36, 0, calls, calls, ""},
		{"same schema, refused as newer", 36, 36, 2, calls, calls, "exited 2, not 0 or 4"},
		{"same schema, failed", 36, 36, 1, calls, calls, "exited 1, not 0 or 4"},
		{"same schema, moved money", 36, 36, 4, calls, moved, "called paysim's money endpoints"},
		{"migrated past it, refused", 35, 36, 2, calls, calls, ""},
		{"migrated past it, ran", 35, 36, 4, calls, calls, "exited 4, not 2"},
		{"migrated past it, refused yet moved", 35, 36, 2, calls, moved, "called paysim's money endpoints"},
		{"migrated past it, ran and moved", 35, 36, 0, calls, moved, "exited 0, not 2; the older settle's run called"},
		{"older's migration never read", 0, 36, 2, calls, calls, "never read"},
	} {
		got := rollbackReport(tc.oldV, tc.v, tc.exit, tc.before, tc.after)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: rollbackReport(%d, %d, %d) = %q, want %q", tc.name, tc.oldV, tc.v, tc.exit, got, tc.want)
		}
	}
}
