package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// TestARunLogsWhatTheDatabaseSaidOfASellerIDItRefused: a seller id the
// sellers query refuses (N/A where the query casts $1 to bigint[]) is
// given no seller, its orders rejected as "not in the platform's
// sellers", while the others are read; the run's log says what the
// database said of it, which the reject's reason cannot.
func TestARunLogsWhatTheDatabaseSaidOfASellerIDItRefused(t *testing.T) {
	db := pgtest.DB(t)
	db.MustExec(`CREATE TABLE merchants (id bigint PRIMARY KEY, name text);
		INSERT INTO merchants SELECT i, 'M' || i FROM generate_series(1, 3) i`)
	var log bytes.Buffer
	src := sellerSource(db, `SELECT id AS seller_id, name, 'Corporate' AS entity_type, 'CHN' AS country,
		'INF' || id AS infinia_seller_id, NULL AS wechat_sub_mchid FROM merchants WHERE id = ANY ($1::bigint[])`, "sellers.sql", slog.New(slog.NewTextHandler(&log, nil)))
	n := 0
	if err := src.Sellers(context.Background(), []string{"1", "N/A", "2"}, func(pipeline.Seller) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("%d sellers given (%v), want 2", n, err)
	}
	if s := log.String(); !strings.Contains(s, "seller=N/A") || !strings.Contains(s, `invalid input syntax for type bigint: \"N/A\"`) {
		t.Errorf("log:\n%s\nwant the refused id with the database's message", s)
	}
}
