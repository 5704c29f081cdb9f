package load

import (
	"context"
	"os"
	"path/filepath"
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
