package pipeline

import (
	"testing"
	"time"
)

func TestWindowIsHalfOpenAndFollowsTheCalendarDay(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, err := ParseDate("2026-11-23")
	if err != nil {
		t.Fatal(err)
	}
	w := WindowOf(d, sh)
	if got := w.Start.UTC().Format(time.RFC3339); got != "2026-11-22T16:00:00Z" {
		t.Fatalf("start %s", got)
	}
	if !w.Contains(w.Start) || w.Contains(w.End) || !w.Contains(w.End.Add(-time.Nanosecond)) || w.Contains(w.Start.Add(-time.Nanosecond)) {
		t.Fatal("window is not [start, end)")
	}
	// Across a daylight-saving change the day has 23 or 25 hours.
	ny, _ := time.LoadLocation("America/New_York")
	if h := WindowOf(Date{2026, 3, 8}, ny).End.Sub(WindowOf(Date{2026, 3, 8}, ny).Start); h != 23*time.Hour {
		t.Fatalf("spring-forward day lasts %s", h)
	}
	if h := WindowOf(Date{2026, 11, 1}, ny).End.Sub(WindowOf(Date{2026, 11, 1}, ny).Start); h != 25*time.Hour {
		t.Fatalf("fall-back day lasts %s", h)
	}
}

func TestDates(t *testing.T) {
	for _, bad := range []string{"2026-13-01", "2026-02-30", "20261123", "", "2026-1-1"} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
	d := Date{2026, 12, 31}
	if got := d.AddDays(1).String(); got != "2027-01-01" {
		t.Errorf("AddDays: %s", got)
	}
	if d.Compact() != "20261231" || !d.Before(d.AddDays(1)) || d.AddDays(1).Before(d) {
		t.Error("Compact/Before")
	}
}

func TestShards(t *testing.T) {
	for _, bad := range []string{"", "1", "4/4", "-1/4", "0/0", "a/b", "1/2/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	// Every seller belongs to exactly one shard, and the shards are used.
	const n = 4
	per := make([]int, n)
	for i := 0; i < 10000; i++ {
		seller := "S" + time.Duration(i).String()
		owners := 0
		for j := 0; j < n; j++ {
			if (Shard{j, n}).Owns(seller) {
				owners++
				per[j]++
			}
		}
		if owners != 1 {
			t.Fatalf("seller %s owned by %d shards", seller, owners)
		}
	}
	for j, c := range per {
		if c < 2000 || c > 3000 {
			t.Errorf("shard %d holds %d of 10000 sellers: badly balanced", j, c)
		}
	}
	if !(Shard{0, 4}).Owns("") || (Shard{1, 4}).Owns("") {
		t.Error("rows without a seller must go to shard 0 only")
	}
}
