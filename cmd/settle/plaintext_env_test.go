package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline/ledger"
)

// envAllowPlainText is settle's variable for --database-allow-plaintext.
const envAllowPlainText = "SETTLE_DATABASE_ALLOW_PLAINTEXT"

// plainTextElsewhere reports whether url, a test database's URL handed to
// settle, is plain text to another machine: SETTLE_TEST_DATABASE_URL of a
// server elsewhere with sslmode=disable, which pgtest takes. settle
// refuses such a URL (ledger.CheckTLS, exit 2) unless allowed: every test
// running settle on it ended with exit 2. The harness allows it then, and
// only then, so that the refusal stays tested (with URLs of its own:
// TestPlainTextToAnotherMachineIsRefused).
func plainTextElsewhere(url string) bool {
	return errors.Is(ledger.CheckTLS(url, false), ledger.ErrPlainText)
}

// dbEnv is the environment handing a settle process the test database
// url: SETTLE_DATABASE_URL, and SETTLE_DATABASE_ALLOW_PLAINTEXT as
// plainTextElsewhere says (set either way: one the shell exports does not
// decide).
func dbEnv(url string) []string {
	allow := "false"
	if plainTextElsewhere(url) {
		allow = "true"
	}
	return []string{"SETTLE_DATABASE_URL=" + url, envAllowPlainText + "=" + allow}
}

// plainTextArgs is the command line of an in-process run (which reads its
// flags' variables from the process's environment, not from the getenv
// it is given) with --database-allow-plaintext added after each database
// URL (--database-url, --source-database-url) that plainTextElsewhere
// says needs it.
func plainTextArgs(args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		out = append(out, args[i])
		name, url, inline := strings.Cut(args[i], "=")
		if name != "--"+flagDatabaseURL && name != "--source-database-url" {
			continue
		}
		if !inline {
			if i+1 == len(args) {
				break
			}
			i++
			url = args[i]
			out = append(out, url)
		}
		if plainTextElsewhere(url) && !slices.Contains(out, "--"+flagDatabasePlaintext) {
			out = append(out, "--"+flagDatabasePlaintext)
		}
	}
	return out
}

// TestHarnessAllowsPlainTextOnlyToAnotherMachine: the tests hand settle
// the test database with SETTLE_DATABASE_ALLOW_PLAINTEXT (a process) or
// --database-allow-plaintext (in-process) when its URL is plain text to
// another machine (a SETTLE_TEST_DATABASE_URL elsewhere, sslmode=disable:
// every test running settle exited 2 on it), and only then.
func TestHarnessAllowsPlainTextOnlyToAnotherMachine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url   string
		allow bool
	}{
		{"postgres://postgres@127.0.0.1:5432/settle_t_1?sslmode=disable", false}, // pgtest's own server
		{"postgres://postgres@localhost/settle_t_1?sslmode=disable", false},
		{"postgres://postgres@/settle_t_1?host=/var/run/postgresql&sslmode=disable", false},
		{"postgres://ci:pw@db.ci.internal:5432/settle_t_1?sslmode=disable", true},
		{"postgres://ci:pw@10.0.0.7/settle_t_1?sslmode=prefer", true},
		{"postgres://ci:pw@db.ci.internal/settle_t_1?sslmode=require", false},
		{"postgres://ci:pw@db.ci.internal/settle_t_1?sslmode=verify-full&sslrootcert=system", false},
	} {
		if got := plainTextElsewhere(tc.url); got != tc.allow {
			t.Errorf("%s: plainTextElsewhere %v, want %v", tc.url, got, tc.allow)
		}
		want := envAllowPlainText + "=false"
		if tc.allow {
			want = envAllowPlainText + "=true"
		}
		if env := dbEnv(tc.url); !slices.Contains(env, want) || !slices.Contains(env, "SETTLE_DATABASE_URL="+tc.url) {
			t.Errorf("%s: process environment %q, want %s", tc.url, env, want)
		}
		for _, args := range [][]string{
			{"settle", "status", "--database-url", tc.url, "--date", testDate},
			{"settle", "status", "--database-url=" + tc.url, "--date", testDate},
			{"settle", "run", "--database-url", "postgres://x@127.0.0.1/db?sslmode=disable", "--source-database-url", tc.url},
		} {
			got := plainTextArgs(args)
			if allowed := slices.Contains(got, "--"+flagDatabasePlaintext); allowed != tc.allow || len(got) != len(args)+map[bool]int{true: 1}[tc.allow] {
				t.Errorf("%q: %q, want --%s added only for plain text to another machine", args, got, flagDatabasePlaintext)
			}
		}
	}
}
