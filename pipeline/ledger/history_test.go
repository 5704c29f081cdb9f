package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Issue 14: the reads that span the ledger's history - a run's sellers'
// totals at Infinia, the pending late refunds with their orders' clawbacks
// and rejects - and the reads of one date, window or key cost what they
// return, not what the ledger holds. On a ledger of 30 dates, every scan
// of trade_files, effects, rejects, adjustments, late_refunds or
// run_sellers in their plans has an index condition on a run, an order, a
// date or a key; none reads a table whole. Before migrations 00013 to
// 00015 the expected shares sorted every trade file and revenue share of
// the ledger, each pending late refund scanned every reject, and the
// reports, the late refunds of a date and an Infinia id's seller scanned
// their tables.
func TestHistoryReadsAreBoundedByTheRun(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const days, sellers = 30, 300
	var runs []*pipeline.Run
	for d := range days {
		runs = append(runs, openRun(t, l, day.AddDays(d)))
	}
	first, last := runs[0].ID, runs[days-1].ID
	if _, err := l.DB().Exec(strings.NewReplacer("$1", fmt.Sprint(first), "$2", fmt.Sprint(last), "$3", fmt.Sprint(sellers)).Replace(`
		INSERT INTO trade_files (run_id, business_date, seller_id, currency, request_no, name, sha256, rows, bytes, seller_minor, status)
		SELECT r.id, r.business_date, 'S' || s, 'USD', 'TF' || r.id || '-' || s, 'F' || r.id || '-' || s, 'x', 1, 1, 100, 'SUCCESS'
		FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2 ORDER BY r.id, s;
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, created_at, updated_at)
		SELECT r.id, k, CASE k WHEN 'revenue_share' THEN 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD'
		                       ELSE 'WX/' || to_char(r.business_date, 'YYYYMMDD') || '/O' || r.id || '-' || s END,
		       1, k || r.id || '-' || s, 'USD', 100, 'succeeded', r.business_date + time '12:00', r.business_date + time '13:00'
		FROM runs r, generate_series(1, $3) s, unnest(ARRAY['revenue_share', 'wechat_distribution']) k
		WHERE r.id BETWEEN $1 AND $2 ORDER BY r.id, s;
		INSERT INTO rejects (run_id, seq, order_no, seller_id, reason)
		SELECT r.id, s, 'R' || r.id || '-' || s, 'S1', 'bad' FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO adjustments (run_id, business_date, kind, seller_id, currency, amount_minor, refund_minor, order_no, refund_no)
		SELECT r.id, r.business_date, 'clawback', 'S1', 'USD', -100, 100, 'C' || r.id || '-' || s, 'CR' || r.id || '-' || s
		FROM runs r, generate_series(1, $3 / 3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date)
		SELECT 'LR' || s, CASE WHEN s % 2 = 0 THEN 'C' || $2 || '-' || s ELSE 'R' || $2 || '-' || s END, 'S1', 100, now(), $2, r.business_date
		FROM runs r, generate_series(1, 20) s WHERE r.id = $2;
		INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state)
		SELECT 'OLD' || r.id || '-' || s, 'C' || r.id || '-' || s, 'S1', 100, now(), r.id, r.business_date,
		       (ARRAY['clawed', 'ignored', 'rejected'])[1 + s % 3]
		FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2 - 1;
		INSERT INTO adjustments (run_id, business_date, kind, seller_id, currency, amount_minor, subject, netted_into, netted_date)
		SELECT r.id, r.business_date, 'held', 'S' || s, 'USD', 100, 'RS/x', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD', r.business_date
		FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once)
		SELECT 'O' || r.id || '-' || s, r.id, r.business_date, 'S' || s, 'wechatpay', 'T' || r.id || '-' || s, 'USD', 'c', 100, 0, 1, 99, 'r', now(), now(), 'paid', true
		FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id, wechat_sub_mchid)
		SELECT r.id, 'S' || s, 'INF' || s, 'SUB' || (s % 10) FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2;
		ANALYZE`)); err != nil {
		t.Fatal(err)
	}
	scan := regexp.MustCompile(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)( Backward)?( using \S+)? on (trade_files|effects|rejects|adjustments|late_refunds|run_sellers)\b`)
	// Bounded: a condition on a run, an order, a date, a seller, a key, a
	// state that is left behind (pending); or the open carried entries' own
	// index (what is open, not what was). The dates asked are the last
	// run's, as a night's reports ask.
	bounded := regexp.MustCompile(`(Index|Recheck) Cond: .*\b(run_id|order_no|business_date|netted_date|infinia_seller_id|seller_id|subject|idem_key|updated_at|refund_no|reprice_id|id) (=|>=|<=|>|<) |Cond: \(state = 'pending'|Cond: \(netted_into = ''|Index Scan (using|on) adjustments_open `)
	bitmapPart := regexp.MustCompile(`->  (Bitmap Index Scan|BitmapAnd|BitmapOr)`)
	mid, tonight := runs[days/2], runs[days-1]
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"expected shares":      {ledger.ExpectedSharesQuery, []any{mid.ID}},
		"pending late refunds": {ledger.PendingLateRefundsQuery, []any{"", 1000}},
		"SellerLines":          {ledger.DateQueries["SellerLines"], []any{tonight.Key.Date.String(), "RS/" + tonight.Key.Date.Compact() + "/%"}},
		"clawbackSummary":      {ledger.DateQueries["clawbackSummary"], []any{tonight.Key.Date.String()}},
		"repriceSummary":       {ledger.DateQueries["repriceSummary"], []any{tonight.Key.Date.String()}},
		"repriceItems":         {ledger.DateQueries["repriceItems"], []any{tonight.Key.Date.String()}},
		"RejectedLateRefunds":  {ledger.DateQueries["RejectedLateRefunds"], []any{tonight.Key.Date.String()}},
		"lateRefundStatus":     {ledger.DateQueries["lateRefundStatus"], []any{tonight.Key.Date.String()}},
		"SellerOfInfiniaID":    {ledger.DateQueries["SellerOfInfiniaID"], []any{"INF7"}},
		"WeChatDistributedAfter": {ledger.DateQueries["WeChatDistributedAfter"], []any{"wechat_distribution", tonight.Key.Date.Time(time.UTC).Add(-time.Hour),
			tonight.Key.Date.AddDays(1).Time(time.UTC).Add(time.Hour), pq.Array([]string{"SUB1"}), tonight.ID, "wechatpay", "", 100}},
	} {
		var plan []string
		if err := l.DB().Select(&plan, `EXPLAIN `+q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, line := range plan {
			m := scan.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			// The node's conditions follow it, up to the next node (a
			// bitmap heap scan's with those of its index scans).
			ok := false
			for _, c := range plan[i+1:] {
				if strings.Contains(c, "->") && !(m[1] == "Bitmap Heap Scan" && bitmapPart.MatchString(c)) {
					break
				}
				ok = ok || bounded.MatchString(c)
			}
			if !ok {
				t.Errorf("%s reads %s whole:\n%s", name, m[4], strings.Join(plan, "\n"))
				break
			}
		}
	}
	// And they still read right: the late refunds of orders never settled
	// say which reject, and those of clawed orders carry their clawbacks.
	// Read in pages of 3 orders, each order whole in one page.
	var pending []pipeline.PendingLateRefund
	for after := ""; ; {
		page, err := l.PendingLateRefunds(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		orders := map[string]bool{}
		for _, p := range page {
			if p.OrderNo <= after {
				t.Fatalf("order %s in the page after %s", p.OrderNo, after)
			}
			orders[p.OrderNo] = true
		}
		if len(orders) > 3 {
			t.Fatalf("a page of %d orders, want at most 3", len(orders))
		}
		after = page[len(page)-1].OrderNo
		pending = append(pending, page...)
	}
	if len(pending) != 20 {
		t.Fatalf("%d pending late refunds, want 20", len(pending))
	}
	for _, p := range pending {
		if strings.HasPrefix(p.OrderNo, "R") != strings.Contains(p.SourceRejected, "bad") {
			t.Errorf("%s: source rejected %q", p.OrderNo, p.SourceRejected)
		}
	}
}

// UnappliedPayouts, on every distribute, costs what the run's succeeded
// payouts cost, not what the ledger holds: a month of dates whose
// revenue shares netted carried balances (300 a date, ten items each,
// all paid since) and the run's own, one of whose items is still
// carried. As an EXISTS, the planner read every item of the ledger.
func TestUnappliedPayoutsIsBoundedByTheRun(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	var runs []int64
	for d := range 30 {
		runs = append(runs, openRun(t, l, day.AddDays(d)).ID)
	}
	first, last := runs[0], runs[len(runs)-1]
	if _, err := l.DB().Exec(strings.NewReplacer("$1", fmt.Sprint(first), "$2", fmt.Sprint(last)).Replace(`
		INSERT INTO adjustments (run_id, business_date, kind, seller_id, currency, amount_minor, subject, netted_into, netted_date)
		SELECT r.id, r.business_date, 'held', 'S' || s, 'USD', 100, 'RS/x', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD', r.business_date
		FROM runs r, generate_series(1, 300) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once, carry_id)
		SELECT 'O' || a.id || '-' || k, a.run_id, a.business_date, a.seller_id, 'infiniapay', 'T' || a.id || '-' || k, 'USD', 'c', 100, 0, 1, 99, 'r', now(), now(),
		       CASE WHEN a.run_id = $2 AND a.seller_id = 'S7' AND k = 1 THEN 'carried' ELSE 'paid' END, false, a.id
		FROM adjustments a, generate_series(1, 10) k;
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r.id, 'revenue_share', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD', 1, 'K' || r.id || '-' || s, 'USD', 100, 'succeeded'
		FROM runs r, generate_series(1, 300) s WHERE r.id BETWEEN $1 AND $2;
		ANALYZE`)); err != nil {
		t.Fatal(err)
	}
	got, err := l.UnappliedPayouts(ctx, last, "revenue_share")
	if err != nil || len(got) != 1 || !strings.HasSuffix(got[0].Subject, "/S7/USD") {
		t.Fatalf("unapplied payouts %+v, %v; want S7's alone", got, err)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.UnappliedPayoutsQuery, last, "revenue_share"); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan on items") || strings.Contains(text, "Seq Scan on adjustments") || !strings.Contains(text, "carry_id = a.id") {
		t.Fatalf("UnappliedPayouts reads more than the run's payouts:\n%s", text)
	}
}

// The sellers' reads of the latest Infinia id - an id's seller (every
// binding webhook), every seller's id (settle sellers sync) - cost what
// they return, not the nights each seller sold: on 60 nights of 100
// sellers, the seller of an id reads one row of run_sellers, and the
// known sellers about two a seller. Before migration 00025 the first read
// every run of the id (60) and sorted them, the second every row of
// run_sellers (6,000) and sorted them.
func TestSellerReadsCostTheSellersNotTheNights(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	const days, sellers = 60, 100
	var runs []*pipeline.Run
	for d := range days {
		runs = append(runs, openRun(t, l, day.AddDays(d)))
	}
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id)
		SELECT r.id, 'S' || lpad(s::text, 3, '0'), 'INF' || s FROM runs r, generate_series(1, %d) s
		WHERE r.id BETWEEN %d AND %d ORDER BY r.id, s; ANALYZE run_sellers`, sellers, runs[0].ID, runs[days-1].ID)); err != nil {
		t.Fatal(err)
	}
	// rows=N loops=M of every node reading run_sellers.
	node := regexp.MustCompile(`(Scan|Scan Backward)( using \S+)? on run_sellers\b.*actual time=\S+ rows=(\d+) loops=(\d+)`)
	read := func(name, q string, args ...any) int {
		var plan []string
		if err := l.DB().Select(&plan, `EXPLAIN (ANALYZE, COSTS OFF) `+q, args...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for _, line := range plan {
			if m := node.FindStringSubmatch(line); m != nil {
				var rows, loops int
				fmt.Sscan(m[3], &rows)
				fmt.Sscan(m[4], &loops)
				n += rows * loops
			}
		}
		t.Logf("%s: %d rows of run_sellers read\n%s", name, n, strings.Join(plan, "\n"))
		return n
	}
	if n := read("SellerOfInfiniaID", ledger.DateQueries["SellerOfInfiniaID"], "INF7"); n > 1 {
		t.Errorf("the seller of an Infinia id read %d rows of run_sellers, want 1 (its latest run's)", n)
	}
	if n := read("KnownSellers", ledger.DateQueries["KnownSellers"]); n > 3*sellers {
		t.Errorf("the known sellers read %d rows of run_sellers for %d sellers of %d nights, want at most %d", n, sellers, days, 3*sellers)
	}
	if got, ok, err := l.SellerOfInfiniaID(context.Background(), "INF7"); err != nil || !ok || got != "S007" {
		t.Fatalf("seller of INF7: %q, %v, %v", got, ok, err)
	}
	known, err := l.KnownSellers(context.Background())
	if err != nil || len(known) != sellers || known[0].SellerID != "S001" || known[0].ProviderSellerID != "INF1" {
		t.Fatalf("known sellers: %d, first %+v, %v", len(known), known[0], err)
	}
}

// The first page of a date's revenue shares (every reconcile's, its cursor
// empty) starts at the date's: on 15 nights of 600 revenue shares, it
// reads a few pages of the effects' key and the page's rows, not the key
// of every earlier night's (84 buffers before). Each night has its WeChat
// distributions too (2,000), as a real one: a run's effects are then too many for the
// planner to read them all by effects_run_kind (effects_run before migration 00039), and it walks the key. Before, the B-tree began from the row
// comparison's bound (the empty cursor), beside subject >= the prefix,
// and walked them all.
func TestTheFirstPageOfADatesRevenueSharesStartsAtItsDate(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	const days, sellers = 15, 600
	var runs []*pipeline.Run
	for d := range days {
		runs = append(runs, openRun(t, l, day.AddDays(d)))
	}
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r.id, 'revenue_share', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || lpad(s::text, 4, '0') || '/USD', 1,
		       'RS-' || r.id || '-' || s, 'USD', 100, 'succeeded'
		FROM runs r, generate_series(1, %[1]d) s WHERE r.id BETWEEN %[2]d AND %[3]d
		UNION ALL
		SELECT r.id, 'distribution', 'WX/' || to_char(r.business_date, 'YYYYMMDD') || '/O' || lpad(s::text, 5, '0'), 1,
		       'WX-' || r.id || '-' || s, 'USD', 10, 'succeeded'
		FROM runs r, generate_series(1, 2000) s WHERE r.id BETWEEN %[2]d AND %[3]d
		ORDER BY 1, 3; ANALYZE effects`,
		sellers, runs[0].ID, runs[days-1].ID)); err != nil {
		t.Fatal(err)
	}
	last := runs[days-1]
	prefix := "RS/" + last.Key.Date.Compact() + "/"
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+ledger.EffectsOfKindAfterQuery, last.ID, "revenue_share",
		prefix, "RS/"+last.Key.Date.Compact()+"0", "", 0, 100); err != nil {
		t.Fatal(err)
	}
	buffers := regexp.MustCompile(`Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?`)
	n := 0
	for _, line := range plan {
		if strings.HasPrefix(line, "Planning") {
			break // the planner's own reads of the catalog
		}
		if m := buffers.FindStringSubmatch(line); m != nil && strings.Contains(line, "Buffers") {
			var hit, read int
			fmt.Sscan(m[1]+" 0", &hit)
			fmt.Sscan(m[2]+" 0", &read)
			if hit+read > n {
				n = hit + read
			}
		}
	}
	if n == 0 || n > 60 {
		t.Fatalf("the first page of a date's 600 revenue shares among %d dates' read %d buffers, want at most 60:\n%s",
			days, n, strings.Join(plan, "\n"))
	}
	page, err := l.EffectsOfKindAfter(context.Background(), last.ID, "revenue_share", prefix, "", 0, 100)
	if err != nil || len(page) != 100 || page[0].Subject != prefix+"S0001/USD" {
		t.Fatalf("first page: %d, %v", len(page), err)
	}
}

// TestSendsReadsTheRefusalsOnce: Sends, run twice a run over every money
// effect of its date and shard, reads the effects' history once, by the
// refusals' own index (migration 00027), not once an effect: looked up
// effect by effect it cost as much again as the rest (13,000 money
// effects: 23 ms against 10). And it still counts the refused requests
// apart, and the effects whose every send was refused as none.
func TestSendsReadsTheRefusalsOnce(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	const n = 2000
	if _, err := l.DB().Exec(fmt.Sprintf(`
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, sends)
		SELECT %d, 'revenue_share', 'RS/x/S' || s, 1, 'k' || s, 'USD', 100, 'succeeded', CASE WHEN s %% 100 = 0 THEN 2 ELSE 1 END
		FROM generate_series(1, %d) s;
		INSERT INTO effect_events (effect_id, from_state, to_state, cause, sends)
		SELECT id, 'sent', 'unknown', 'refused', 1 FROM effects WHERE subject LIKE 'RS/x/S%%0' AND sends = 1 OR sends = 2;
		ANALYZE`, run.ID, n)); err != nil {
		t.Fatal(err)
	}
	// 20 effects sent twice, the first refused; 180 sent once and refused.
	got, err := l.Sends(ctx, run.Key, []string{"revenue_share"})
	if want := (ledger.Sent{Requests: n + 20, Effects: n - 180, Refused: 200}); err != nil || got != want {
		t.Fatalf("Sends = %+v, %v; want %+v", got, err, want)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN ANALYZE `+ledger.SendsQuery, run.Key.Date.String(), run.Key.Shard.Index, run.Key.Shard.Count,
		pq.Array([]string{"revenue_share"})); err != nil {
		t.Fatal(err)
	}
	loops := regexp.MustCompile(`loops=(\d+)`)
	byRefusals := false
	for _, line := range plan {
		if !strings.Contains(line, " on effect_events") {
			continue
		}
		byRefusals = byRefusals || strings.Contains(line, "on effect_events_refused ")
		if m := loops.FindStringSubmatch(line); m == nil || m[1] != "1" {
			t.Fatalf("Sends reads the effects' history effect by effect:\n%s", strings.Join(plan, "\n"))
		}
	}
	if !byRefusals {
		t.Errorf("Sends does not read the refusals by their index:\n%s", strings.Join(plan, "\n"))
	}
}

// MarkSent, before every request with a side effect, finds its effect by
// the primary key whatever the statistics say of the open effects. Its
// condition on the state once named the open states, which is the
// predicate of effects_one_open: on a ledger whose effects are all final
// when the table was last analyzed (every night ends so, and autovacuum
// analyzes a table of years' effects once in many nights) that index
// looked empty and shallower than the key, and the planner scanned it
// whole for the id - through every open version the night had left in it,
// dead or alive. On a ledger of 1,000 nights (scripts/historyledger) a
// night's 15,015 sends cost 14.9 ms and 7,017 buffers each, 224 s of the
// 287 s in statements; 0.38 ms and 50 buffers by the key (PERFORMANCE.md,
// "A night on a ledger of 1,000 nights").
func TestMarkSentFindsItsEffectByKey(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT $1, 'distribution', 'WX/' || n, 1, 'K' || n, 'USD', 100, 'succeeded' FROM generate_series(1, 3000) n`, run.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`VACUUM ANALYZE effects`); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for n := range 3 {
		e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "distribution", Subject: fmt.Sprintf("WX/new/%d", n), Attempt: 1,
			Key: fmt.Sprintf("new-%d", n), Currency: "USD", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.MarkSentQuery, ids[0]); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !regexp.MustCompile(`Update on effects\s.*\n\s*->\s+Index Scan using effects_pkey on effects\s.*\n\s*Index Cond: \(id = `).MatchString(text) {
		t.Errorf("MarkSent does not find its effect by the key:\n%s", text)
	}
	// And it still marks an open effect sent, and no final one.
	if err := l.MarkSent(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, ids[1]); err != nil {
		t.Fatalf("sent again: %v", err)
	}
	if err := l.RecordOutcome(ctx, ids[1], pipeline.EffectSucceeded, "ref", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, ids[1]); err == nil || !strings.Contains(err.Error(), "already final") {
		t.Fatalf("a final effect marked sent: %v", err)
	}
	var path string
	if err := l.DB().Get(&path, `SELECT string_agg(to_state || ':' || cause || ':' || sends, ' ' ORDER BY id) FROM effect_events WHERE effect_id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if want := "planned:planned:0 sent:sent:1 sent:sent again:2 succeeded:answer:2"; path != want {
		t.Fatalf("history %q, want %q", path, want)
	}
}

// UnappliedPayouts costs the run's payouts and the entries they netted,
// also when the day's carried balances were recorded after the ledger's
// statistics were last taken - as on every night: the items are analyzed
// when written, and distribute carries a seller's items and writes its
// entries after. With statistics that knew of no carried item and no
// entry, the planner read the run's payouts' netted entries from the
// items' side: every carried item, through items_carry, for each payout.
// A night of 10,000 orders over 5,000 sellers, most below --min-payout,
// spent 14.3 s on it in a re-run that sent nothing; 500 payouts and
// 18,000 carried items here, 59 s (1.2 ms now, the entries first: see
// PERFORMANCE.md).
func TestUnappliedPayoutsWithStatisticsOfBeforeTheCarry(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	const items, sellers, paid = 4000, 1000, 100
	if _, err := l.DB().ExecContext(ctx, strings.NewReplacer("$1", fmt.Sprint(run.ID), "$2", fmt.Sprint(items), "$3", fmt.Sprint(sellers)).Replace(`
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once)
		SELECT 'O' || k, $1, r.business_date, 'S' || (k % $3), 'infiniapay', 'T' || k, 'USD', 'c', 100, 0, 1, 99, 'r', now(), now(), 'recorded', false
		FROM runs r, generate_series(1, $2) k WHERE r.id = $1;
		ANALYZE`)); err != nil {
		t.Fatal(err)
	}
	// Distribute, after the statistics: sellers from paid on carried (an
	// entry each, their items carried), the others paid, S0's payout
	// netting an entry whose item is still carried (the run stopped before
	// applying it).
	if _, err := l.DB().ExecContext(ctx, strings.NewReplacer("$1", fmt.Sprint(run.ID), "$3", fmt.Sprint(sellers), "$4", fmt.Sprint(paid)).Replace(`
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
		SELECT 'S' || s, 'USD', 'held', 396, r.business_date, $1 FROM runs r, generate_series(0, $3 - 1) s WHERE r.id = $1;
		UPDATE adjustments SET netted_into = 'RS/' || to_char(business_date, 'YYYYMMDD') || '/' || seller_id || '/USD', netted_date = business_date
		WHERE seller_id IN (SELECT 'S' || s FROM generate_series(0, $4 - 1) s);
		UPDATE items i SET state = 'carried', carry_id = a.id FROM adjustments a WHERE a.seller_id = i.seller_id AND (a.netted_into = '' OR i.seller_id = 'S0');
		UPDATE items SET state = 'paid' WHERE state = 'recorded';
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT $1, 'revenue_share', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD', 1, 'K' || s, 'USD', 396, 'succeeded'
		FROM runs r, generate_series(0, $4 - 1) s WHERE r.id = $1`)); err != nil {
		t.Fatal(err)
	}
	got, err := l.UnappliedPayouts(ctx, run.ID, "revenue_share")
	if err != nil || len(got) != 1 || !strings.HasSuffix(got[0].Subject, "/S0/USD") {
		t.Fatalf("unapplied payouts %+v, %v; want S0's alone", got, err)
	}
	var plan []string
	if err := l.DB().SelectContext(ctx, &plan, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+ledger.UnappliedPayoutsQuery, run.ID, "revenue_share"); err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`rows=(\d+) loops=(\d+)`)
	itemsRead := 0
	for _, line := range plan {
		if m := read.FindStringSubmatch(line); m != nil && strings.Contains(line, " on items ") {
			rows, _ := strconv.Atoi(m[1])
			loops, _ := strconv.Atoi(m[2])
			itemsRead += rows * loops
		}
	}
	// The netted entries' items: S0's (4 of them, one read), none of the
	// other paid sellers' (paid, not carried).
	if itemsRead > 2*paid {
		t.Fatalf("UnappliedPayouts read %d items for %d payouts:\n%s", itemsRead, paid, strings.Join(plan, "\n"))
	}
}
