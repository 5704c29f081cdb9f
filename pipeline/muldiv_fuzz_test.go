package pipeline

import (
	"errors"
	"math/big"
	"testing"
)

// FuzzMulDiv checks MulDivHalfEven and MulDivFloor against math/big: for
// operands in range the exact quotient rounded half to even (or down),
// or ErrOverflow exactly when it leaves int64; operands out of range are
// an error, never a value.
func FuzzMulDiv(f *testing.F) {
	f.Add(int64(12345), int64(250), int64(10000))
	f.Add(int64(5), int64(5000), int64(10000))
	f.Add(int64(15), int64(5000), int64(10000))
	f.Add(int64(1<<62), int64(4), int64(2))
	f.Add(int64(1<<62), int64(2), int64(1))
	f.Add(int64(-1), int64(1), int64(1))
	f.Add(int64(1), int64(1), int64(0))
	f.Add(int64(9223372036854775807), int64(9223372036854775807), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, x, num, den int64) {
		he, errHE := MulDivHalfEven(x, num, den)
		fl, errFl := MulDivFloor(x, num, den)
		if x < 0 || num < 0 || den <= 0 {
			if errHE == nil || errFl == nil || errors.Is(errHE, ErrOverflow) || errors.Is(errFl, ErrOverflow) {
				t.Fatalf("operands %d, %d, %d: %d, %v; %d, %v", x, num, den, he, errHE, fl, errFl)
			}
			return
		}
		p := new(big.Int).Mul(big.NewInt(x), big.NewInt(num))
		q, r := new(big.Int).QuoRem(p, big.NewInt(den), new(big.Int))
		floor := new(big.Int).Set(q)
		twice := new(big.Int).Lsh(r, 1)
		if c := twice.Cmp(big.NewInt(den)); c > 0 || (c == 0 && q.Bit(0) == 1) {
			q.Add(q, big.NewInt(1))
		}
		for _, c := range []struct {
			name string
			got  int64
			err  error
			want *big.Int
		}{{"MulDivHalfEven", he, errHE, q}, {"MulDivFloor", fl, errFl, floor}} {
			if !c.want.IsInt64() {
				if !errors.Is(c.err, ErrOverflow) {
					t.Fatalf("%s(%d, %d, %d) = %d, %v; want ErrOverflow", c.name, x, num, den, c.got, c.err)
				}
				continue
			}
			if c.err != nil || c.got != c.want.Int64() {
				t.Fatalf("%s(%d, %d, %d) = %d, %v; want %s", c.name, x, num, den, c.got, c.err, c.want)
			}
		}
	})
}

// FuzzParseShard: a shard ParseShard takes is 0 <= I < N and reads back
// the same from its String; anything else is an error quoting the input.
func FuzzParseShard(f *testing.F) {
	for _, s := range []string{"0/1", "3/4", "4/4", "-1/4", "+1/4", "01/04", "1/0", " 1/4", "1/4/5", "", "/", "9223372036854775807/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShard(s)
		if err != nil {
			return
		}
		if sh.Index < 0 || sh.Count < 1 || sh.Index >= sh.Count {
			t.Fatalf("ParseShard(%q) = %+v", s, sh)
		}
		if again, err := ParseShard(sh.String()); err != nil || again != sh {
			t.Fatalf("ParseShard(%q) = %v, read back %v, %v", s, sh, again, err)
		}
	})
}
