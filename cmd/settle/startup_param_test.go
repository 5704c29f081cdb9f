package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestAStartupParameterTheServerRefusesIsConfiguration: settle sets
// run-time parameters at connect (search_path and jit on the ledger's
// sessions; the deployment's URL adds tcp_keepalives_*). A server that
// does not know one - older than PostgreSQL 11 for jit, or a URL's
// misspelt keepalive - refuses every connection with "unrecognized
// configuration parameter": that was exit 1, "a retry is safe", and the
// Job retried it until its deadline. Running again cannot help: exit 2,
// naming the parameter.
func TestAStartupParameterTheServerRefusesIsConfiguration(t *testing.T) {
	t.Parallel()
	bad, err := ledger.WithParam(pgtest.URL(t), "tcp_keepalive_idle", "60") // tcp_keepalives_idle, misspelt
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"status", "--date", testDate}, {"migrate"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), plainTextArgs(append(append([]string{"settle"}, cmd...), "--database-url", bad)), os.Getenv, &out, &errb)
		if code := exitCode(err, &errb); code != 2 || !strings.Contains(errb.String(), "tcp_keepalive_idle") {
			t.Errorf("settle %s with a parameter the server does not know: exit %d, want 2 naming it:\n%s", cmd[0], code, errb.String())
		}
	}
}
