package ledger

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendUTC writes what AppendFormat writes, for every year it is used for.
func TestAppendUTCIsAppendFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("", 8*3600), time.FixedZone("", -(9*3600 + 30*60))}
	cases := []time.Time{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 3, 1, 0, 0, 0, 1000, zones[1]), time.Date(2026, 2, 28, 16, 0, 0, 100000000, time.UTC)}
	for range 100000 {
		sec := r.Int64N(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()-time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC).Unix()) +
			time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
		ns := []int64{0, r.Int64N(1e9), r.Int64N(1e6) * 1000, r.Int64N(1000) * 1e6}[r.IntN(4)]
		cases = append(cases, time.Unix(sec, ns).In(zones[r.IntN(len(zones))]))
	}
	for _, at := range cases {
		want := at.UTC().AppendFormat(nil, "2006-01-02 15:04:05.999999999Z07:00")
		if got := appendUTC(nil, at); string(got) != string(want) {
			t.Fatalf("%v: %s, want %s", at, got, want)
		}
	}
}
