package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// lateOrderRows is the late_order rows of date d's mismatches.csv, by
// order number.
func (e *env) lateOrderRows(d string) map[string]pipeline.Mismatch {
	e.t.Helper()
	var ms []pipeline.Mismatch
	if err := gocsv.UnmarshalBytes(readFile(e.t, filepath.Join(e.reports, d, "mismatches.csv")), &ms); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]pipeline.Mismatch{}
	for _, m := range ms {
		if m.Category == pipeline.MismatchLateOrder {
			out[m.OrderNo] = m
		}
	}
	return out
}

// lateOrdersOf is what settle status -o json says of the looks at d's
// window.
func (e *env) lateOrdersOf(d string) ledger.LateOrdersStatus {
	e.t.Helper()
	var s struct {
		LateOrders ledger.LateOrdersStatus `json:"late_orders"`
	}
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", d, "-o", "json")), &s); err != nil {
		e.t.Fatal(err)
	}
	return s.LateOrders
}

// TestLateOrdersFoundAreKept: what the look at a date's window named (an
// order written into it since, one changed, one settled and gone) was in
// the night's log alone, gone with the CronJob's pod: settle status, status
// --order and the date's reports said nothing of it (status --order of the
// order written late was refused: no row of the date has it). The ledger
// keeps each now, under the date compared, once however many nights name
// it (first seen kept, last seen moved on), and settle status, status
// --order and the date's mismatches.csv (category late_order, written by
// settle report) show it; an order a later look no longer finds (the
// platform fixed it) is cleared: status says so, mismatches.csv leaves it
// out. What the look names and its exit are as before.
func TestLateOrdersFoundAreKept(t *testing.T) {
	t.Parallel()
	e, at := lateOrdersEnv(t)
	if out, code := at("--date", "2026-11-20"); code != 0 {
		t.Fatalf("2026-11-20: exit %d:\n%s", code, out)
	}
	if lo := e.lateOrdersOf("2026-11-20"); lo.LookedAt != nil || lo.Found != 0 || len(lo.Listed) != 0 {
		t.Fatalf("2026-11-20 before any look: %+v, want no look recorded", lo)
	}
	if out := e.mustSettle("status", "--date", "2026-11-20"); !strings.Contains(out, "since it was read, or changed or gone since: not looked for yet") {
		t.Fatalf("status before any look does not say it was not looked for:\n%s", out)
	}
	late := "LATE-1"
	e.insertLate(late, "2026-11-20 12:00:00+08")
	changed, changedSeller, _ := e.paidOn20(0)
	var gross, amount int64
	if err := e.db.Get(&gross, `SELECT gross_minor FROM settle.items WHERE order_no = $1`, changed); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Get(&amount, `SELECT amount_minor FROM orders WHERE order_no = $1`, changed); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE orders SET amount_minor = amount_minor + 100 WHERE order_no = $1`, changed)
	gone, goneSeller, _ := e.paidOn20(1)
	e.db.MustExec(`DELETE FROM orders WHERE order_no = $1`, gone)

	out, code := at("--date", "2026-11-21")
	if code != 4 || !strings.Contains(out, "order "+late+": written into 2026-11-20's window") || !strings.Contains(out, "order "+changed+": changed on the platform") ||
		!strings.Contains(out, "order "+gone+": settled on 2026-11-20") {
		t.Fatalf("the next night: exit %d, want 4 naming the three orders:\n%s", code, out)
	}
	// Its hint says where the findings are kept, beyond the night's log.
	if !strings.Contains(out, "settle status --date D lists what the looks at D's window found") {
		t.Errorf("the next night's hint does not point at settle status:\n%s", out)
	}
	lo := e.lateOrdersOf("2026-11-20")
	if lo.LookedAt == nil || !strings.HasPrefix(lo.LookedBy, "2026-11-21 shard 0/1") || lo.Found != 3 || lo.Cleared != 0 || len(lo.Listed) != 3 {
		t.Fatalf("status -o json of 2026-11-20 after the look: %+v, want 3 found by 2026-11-21's run", lo)
	}
	byNo := map[string]ledger.LateOrder{}
	for _, o := range lo.Listed {
		byNo[o.OrderNo] = o
	}
	c := byNo[changed]
	if c.Kind != "changed" || c.State != ledger.LateOrderSettled || c.SettledOn != "2026-11-20" || c.SellerID != changedSeller ||
		c.Settled == nil || *c.Settled != gross || c.Now == nil || *c.Now != amount+100 || !strings.Contains(c.Detail, "amount_minor ") || c.Cleared {
		t.Errorf("%s changed: %+v", changed, c)
	}
	if o := byNo[late]; o.Kind != "written_late" || o.State != ledger.LateOrderNotRead || !strings.HasPrefix(o.Detail, "given as: ") || o.Cleared {
		t.Errorf("%s written late: %+v", late, o)
	}
	if o := byNo[gone]; o.Kind != "gone" || o.State != ledger.LateOrderSettled || o.SellerID != goneSeller || !strings.HasPrefix(o.Detail, "read as: ") || o.Cleared {
		t.Errorf("%s gone: %+v", gone, o)
	}
	text := e.mustSettle("status", "--date", "2026-11-20")
	for _, want := range []string{"since it was read, or changed or gone since: 3 found by the latest look", "order " + late + " written_late (read by no run): given as: ",
		"order " + changed + " changed (settled on 2026-11-20, seller " + changedSeller} {
		if !strings.Contains(text, want) {
			t.Errorf("status of 2026-11-20 lacks %q:\n%s", want, text)
		}
	}
	// status --order of the order written late: no row of the date has
	// it, and the look's finding is what there is.
	if out, code := e.settle("status", "--date", "2026-11-20", "--order", late); code != 0 || !strings.Contains(out, "order "+late+" written_late (read by no run)") {
		t.Errorf("status --order %s: exit %d, want 0 showing what the look found:\n%s", late, code, out)
	}
	if out := e.mustSettle("status", "--date", "2026-11-20", "--order", changed); !strings.Contains(out, "order "+changed+" changed (settled on 2026-11-20") {
		t.Errorf("status --order %s does not show what the look found:\n%s", changed, out)
	}
	e.mustSettle("report", "--date", "2026-11-20", "--out", e.reports)
	rows := e.lateOrderRows("2026-11-20")
	m := rows[changed]
	if len(rows) != 3 || m.Provider != pipeline.ProviderPlatform || m.Subject != changed || m.Ours != fmt.Sprint(gross) || m.Theirs != fmt.Sprint(amount+100) ||
		m.OursState != ledger.LateOrderSettled || m.TheirsState != "changed" || m.Expected || m.Detail != c.Detail {
		t.Errorf("mismatches.csv of 2026-11-20: %d late_order rows, %s's %+v", len(rows), changed, m)
	}

	// Named again the night after: the same rows, last seen moved on.
	var firstSeen, lastSeen time.Time
	if err := e.db.QueryRow(`SELECT first_seen, last_seen FROM settle.late_orders WHERE order_no = $1`, late).Scan(&firstSeen, &lastSeen); err != nil {
		t.Fatal(err)
	}
	if _, code := at("--date", "2026-11-21"); code != 4 {
		t.Fatalf("2026-11-21 again: exit %d, want 4", code)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_orders WHERE business_date = '2026-11-20'`); n != 3 {
		t.Fatalf("2026-11-20 named again: %d rows, want the same 3", n)
	}
	var first2, last2 time.Time
	if err := e.db.QueryRow(`SELECT first_seen, last_seen FROM settle.late_orders WHERE order_no = $1`, late).Scan(&first2, &last2); err != nil {
		t.Fatal(err)
	}
	if !first2.Equal(firstSeen) || !last2.After(lastSeen) {
		t.Errorf("%s named again: first seen %v -> %v, last seen %v -> %v; want the first kept, the last later", late, firstSeen, first2, lastSeen, last2)
	}
	// The run of 2026-11-21 again looked at its own date too: nothing.
	if lo := e.lateOrdersOf("2026-11-21"); lo.LookedAt == nil || lo.Found != 0 {
		t.Errorf("2026-11-21 looked at by its own run again: %+v, want a look finding nothing", lo)
	}

	// The platform fixes two: the next look clears them, the third still
	// found.
	e.db.MustExec(`DELETE FROM orders WHERE order_no = $1`, late)
	e.db.MustExec(`UPDATE orders SET amount_minor = amount_minor - 100 WHERE order_no = $1`, changed)
	if out, code := at("--date", "2026-11-21"); code != 4 || strings.Contains(out, "order "+late+":") || strings.Contains(out, "order "+changed+":") {
		t.Fatalf("2026-11-21 after the platform fixed two: exit %d, want 4 naming %s alone:\n%s", code, gone, out)
	}
	lo = e.lateOrdersOf("2026-11-20")
	cleared := map[string]bool{}
	for _, o := range lo.Listed {
		cleared[o.OrderNo] = o.Cleared
	}
	if lo.Found != 1 || lo.Cleared != 2 || len(cleared) != 3 || !cleared[late] || !cleared[changed] || cleared[gone] || lo.Listed[0].OrderNo != gone {
		t.Errorf("2026-11-20 after the platform fixed two: %+v, want %s found (listed first), %s and %s cleared", lo, gone, late, changed)
	}
	if text := e.mustSettle("status", "--date", "2026-11-20"); !strings.Contains(text, "1 found by the latest look") || !strings.Contains(text, "2 found by earlier looks and not by it (cleared)") ||
		strings.Count(text, "cleared: the latest look did not find it") != 2 {
		t.Errorf("status of 2026-11-20 does not show two cleared:\n%s", text)
	}
	e.mustSettle("report", "--date", "2026-11-20", "--out", e.reports)
	if rows := e.lateOrderRows("2026-11-20"); len(rows) != 1 || rows[gone].TheirsState != "gone" || rows[gone].Ours == "" || rows[gone].Theirs != "" {
		t.Errorf("mismatches.csv of 2026-11-20 after the platform fixed two: %+v, want %s's row alone", rows, gone)
	}
}

// TestLateOrdersHintsSayWhatStatusLists: the night's hint for orders
// written into windows already read, and its "... N more", point at settle
// status --date D; status lists the first of a date's and counts the rest
// (the ledger's late_orders keeps them all). Both said it lists them all,
// every one: an operator of a date with more found them cut short, with
// nowhere to read the others but the table.
func TestLateOrdersHintsSayWhatStatusLists(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const d, n = "2026-11-20", 120
	at := time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC)
	if _, err := e.db.Exec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, stages_done, time_zone, rules_hash, config_hash)
		VALUES ($1, 0, 1, 'done', '{}', 'Asia/Shanghai', 'r', 'c')`, d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO settle.late_order_looks (business_date, looked_at) VALUES ($1, $2)`, d, at); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO settle.late_orders (business_date, order_no, kind, state, first_seen, last_seen)
		SELECT $1, 'L' || lpad(k::text, 4, '0'), 'written_late', 'not_read', $2, $2 FROM generate_series(1, $3) k`, d, at, n); err != nil {
		t.Fatal(err)
	}
	lo := e.lateOrdersOf(d)
	if lo.Found != n {
		t.Fatalf("status of %s: %d found, want %d", d, lo.Found, n)
	}
	out := e.mustSettle("status", "--date", d)
	listed := strings.Count(out, "order L0")
	more := fmt.Sprintf("... %d more", n-listed)
	if listed >= n || !strings.Contains(out, more) {
		t.Fatalf("status of %s listed %d of %d (want the first, and %q):\n%s", d, listed, n, more, out)
	}
	// Status lists fewer than the date's all: neither text may say it
	// lists them all, and both name where they all are.
	for name, text := range map[string]string{"hint": hintLateOrders, "'... N more' line": restLateOrders} {
		if strings.Contains(text, "lists them all") || strings.Contains(text, "lists every") || !strings.Contains(text, "late_orders") {
			t.Errorf("the %s says %q, while status --date D lists %d of %d (and ... %d more)", name, text, listed, n, n-listed)
		}
	}
}

// TestALateOrderWithAnOverlongNumberIsKept: an order written into a date's
// window since it was read whose order number is longer than an index row
// may be (a few kilobytes: a platform with no btree index of its order
// numbers holds it; its own date's run rejects it, longer than 128
// bytes) had the look's record of what it found refused by the ledger
// ("index row size ... exceeds btree version 4 maximum 2704 for index
// late_orders_pkey"): every night of the re-check window ended 1, a retry
// "safe" that failed the same way, and the orders written late beside it
// were kept by no look. The ledger keeps such a number bounded, a form
// that tells two of them with the same beginning apart, and status
// --order finds it under the number the platform gives. Seen failing
// without the bound (exit 1, the ledger's refusal).
func TestALateOrderWithAnOverlongNumberIsKept(t *testing.T) {
	t.Parallel()
	e, at := lateOrdersEnv(t)
	if out, code := at("--date", "2026-11-20"); code != 0 {
		t.Fatalf("2026-11-20: exit %d:\n%s", code, out)
	}
	// The reference schema indexes its order numbers, as a platform with
	// such numbers does not.
	e.db.MustExec(`DROP INDEX orders_order_no`)
	var long string // 6,400 bytes that do not compress below an index row's bound
	if err := e.db.Get(&long, `SELECT string_agg(md5(g::text), '' ORDER BY g) FROM generate_series(1, 200) g`); err != nil {
		t.Fatal(err)
	}
	long1, long2 := long+"-1", long+"-2"   // the same beginning
	wide := strings.Repeat("订", 40) + long // its beginning kept is whole characters
	for _, no := range []string{long1, long2, "LATE-short", wide} {
		e.insertLate(no, "2026-11-20 12:00:00+08")
	}
	out, code := at("--date", "2026-11-21")
	if code != 4 || !strings.Contains(out, "order LATE-short: written into 2026-11-20's window") || strings.Contains(out, "index row size") {
		t.Fatalf("the next night, three orders written into 2026-11-20, two of them with numbers of %d bytes: exit %d, want 4 naming them:\n%s", len(long1), code, out)
	}
	var kept []string
	if err := e.db.Select(&kept, `SELECT order_no FROM settle.late_orders WHERE business_date = '2026-11-20' ORDER BY order_no COLLATE "C"`); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 4 || kept[0] != "LATE-short" || kept[1] == kept[2] {
		t.Fatalf("2026-11-20's late orders kept: %q, want the four, the long numbers told apart", kept)
	}
	for i, k := range kept[1:] {
		begin := long[:64]
		if i == 2 {
			begin = strings.Repeat("订", 21) // 63 bytes
		}
		if len(k) > pipeline.MaxIdentifier || !utf8.ValidString(k) || !strings.HasPrefix(k, begin+"…") {
			t.Errorf("a long number kept as %q (%d bytes): want its beginning, whole characters, within an identifier's bound", k, len(k))
		}
	}
	for _, no := range []string{long2, kept[1]} {
		if out, code := e.settle("status", "--date", "2026-11-20", "--order", no); code != 0 || !strings.Contains(out, " written_late (read by no run)") {
			t.Errorf("status --order of a long number (%d bytes): exit %d, want 0 showing what the look found:\n%s", len(no), code, out)
		}
	}
	// Named again the night after: the same rows.
	if _, code := at("--date", "2026-11-21"); code != 4 {
		t.Fatalf("2026-11-21 again: exit %d, want 4", code)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_orders WHERE business_date = '2026-11-20'`); n != 4 {
		t.Errorf("2026-11-20 named again: %d rows, want the same 4", n)
	}
}
