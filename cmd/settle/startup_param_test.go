package main

import (
	"bytes"
	"context"
	be "encoding/binary"
	"io"
	"net"
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

// TestAPoolerThatRefusesSettlesParametersIsConfiguration: PgBouncer, in
// any pool mode, refuses a client whose startup packet sets a parameter it
// does not track - every ledger connection of settle's (search_path, jit,
// statement_timeout...) - with "unsupported startup parameter" (08P01).
// That was exit 1, "a retry is safe", retried until the Job's deadline:
// it is exit 2, naming the pooler and what settle needs. The server here
// answers as PgBouncer 1.18 did (its words, byte for byte).
func TestAPoolerThatRefusesSettlesParametersIsConfiguration(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				if _, err := io.ReadFull(c, make([]byte, be.BigEndian.Uint32(n[:])-4)); err != nil {
					return
				}
				body := []byte("SFATAL\x00C08P01\x00Munsupported startup parameter: statement_timeout\x00\x00")
				msg := append([]byte{'E', 0, 0, 0, 0}, body...)
				be.BigEndian.PutUint32(msg[1:], uint32(4+len(body)))
				c.Write(msg)
			}()
		}
	}()
	dsn := "postgres://settle@" + ln.Addr().String() + "/settle?sslmode=disable"
	var out, errb bytes.Buffer
	err = run(context.Background(), plainTextArgs([]string{"settle", "status", "--date", testDate, "--database-url", dsn}), os.Getenv, &out, &errb)
	if code := exitCode(err, &errb); code != 2 || !strings.Contains(errb.String(), "pooler") || !strings.Contains(errb.String(), "directly") {
		t.Errorf("settle status through a pooler that refuses its parameters: exit %d, want 2 naming the pooler:\n%s", code, errb.String())
	}
}
