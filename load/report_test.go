package load

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestWriteOrdersStreamsInChunksAndIsDeterministic(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	emit := func(n int) func(func(pipeline.OrderLine) error) error {
		return func(fn func(pipeline.OrderLine) error) error {
			for i := 0; i < n; i++ {
				if err := fn(pipeline.OrderLine{OrderNo: "O" + string(rune('a'+i%26)), Reason: "a, \"quoted\" reason", Action: "settle"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, n := range []int{0, 1, chunk, chunk + 1, 3*chunk + 7} {
		r := Reports{Dir: t.TempDir()}
		path, err := r.WriteOrders(context.Background(), d, emit(n))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(r.Dir, "2026-11-23", "orders.csv"); path != want {
			t.Fatalf("path %s, want %s", path, want)
		}
		first, _ := os.ReadFile(path)
		lines := 0
		for _, b := range first {
			if b == '\n' {
				lines++
			}
		}
		if lines != n+1 {
			t.Fatalf("%d rows: file has %d lines, want %d (header once)", n, lines, n+1)
		}
		if _, err := r.WriteOrders(context.Background(), d, emit(n)); err != nil {
			t.Fatal(err)
		}
		second, _ := os.ReadFile(path)
		if string(first) != string(second) {
			t.Fatalf("%d rows: rewriting changed the bytes", n)
		}
		left, _ := filepath.Glob(filepath.Join(r.Dir, "2026-11-23", ".*"))
		if len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}

func TestWriteTradeFileReportsDigestSizeAndRows(t *testing.T) {
	dir := t.TempDir()
	rows := func(fn func(pipeline.TradeRow) error) error {
		for _, r := range []pipeline.TradeRow{{OrderNo: "O1", TradeType: "SALE", Currency: "USD", Amount: "1.00"}, {OrderNo: "O1", TradeType: "REFUND", Currency: "USD", Amount: "0.50"}} {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	w, err := WriteTradeFile(dir, "TD_x.csv", rows)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(w.Path)
	sum := sha256.Sum256(b)
	if w.Rows != 2 || w.Bytes != int64(len(b)) || w.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("%+v for %d bytes", w, len(b))
	}
	if !strings.HasPrefix(string(b), "order_no,trade_type,product_type,currency,amount,commission,seller_amount,trade_time\n") {
		t.Fatalf("header: %s", b)
	}
}
