package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// The upload stage holds a page of the day's trade files at a time: the
// items in no file stream by seller and currency with the last attempt of
// each, the open files of a run come in keyset pages by id (through their
// own index, not a scan of every trade file of the ledger: trade_files
// had no index on run_id), and the decided ones are counted and the
// refused named without reading the others.
func TestTradeFilesOfARunGoByPages(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const sellers = 30
	run := openRun(t, l, day)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range 3 * sellers {
			no := fmt.Sprintf("O%05d", i)
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: fmt.Sprintf("S%03d", i%sellers), Channel: chInfinia,
				ProviderTxnID: "T" + no, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Other days' files fill the table: a year of them, in miniature.
	if _, err := l.DB().Exec(`INSERT INTO runs (business_date, shard_index, shard_count, time_zone, rules_hash, config_hash, state)
		SELECT DATE '2025-01-01' + d, 0, 1, 'UTC', '', '', 'done' FROM generate_series(0, 59) d;
		INSERT INTO trade_files (run_id, business_date, seller_id, currency, request_no, name, sha256, rows, bytes, seller_minor, status)
		SELECT r.id, r.business_date, 'S' || s, 'USD', 'R' || r.id || '-' || s, 'F' || r.id || '-' || s, 'x', 1, 1, 1,
		       CASE WHEN s % 10 = 0 THEN 'PROCESSING' ELSE 'SUCCESS' END
		FROM runs r, generate_series(1, 200) s WHERE r.business_date < DATE '2026-01-01'`); err != nil {
		t.Fatal(err)
	}

	wantGroups := sellers
	unfiled := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		var order []string
		if err := l.EachUnfiled(ctx, run.ID, shareChannels, func(p pipeline.Payable, last, groups int) error {
			if groups != wantGroups {
				return fmt.Errorf("%d groups in all, want %d", groups, wantGroups)
			}
			if p.Items != 3 || p.Amount != 27 {
				return fmt.Errorf("%s %s: %d items of %d, want 3 of 27", p.SellerID, p.Currency, p.Items, p.Amount)
			}
			out[p.SellerID] = last
			order = append(order, p.SellerID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(order) {
			t.Fatalf("sellers out of order: %v", order)
		}
		return out
	}
	record := func(seller string, attempt int) pipeline.TradeFile {
		t.Helper()
		req := tradeKey(day, seller, "USD", attempt)
		f, err := l.RecordTradeFile(ctx, pipeline.TradeFile{RunID: run.ID, Date: day, SellerID: seller, Currency: "USD", Attempt: attempt,
			RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", SellerMinor: 27, Items: 3}, shareChannels)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	first := unfiled()
	if len(first) != sellers || first["S007"] != 0 {
		t.Fatalf("unfiled %v: want %d sellers, none with a file", first, sellers)
	}
	var files []pipeline.TradeFile
	for i := range sellers {
		files = append(files, record(fmt.Sprintf("S%03d", i), 1))
	}
	if again := unfiled(); len(again) != 0 {
		t.Fatalf("unfiled after every file was recorded: %v", again)
	}
	// Infinia accepts a third and refuses a tenth; one refused seller's
	// items are in no file again, for its second attempt.
	var wantOpen []int64
	for i, f := range files {
		switch {
		case i%10 == 4:
			f.Status, f.Reason = "FAILED", "2 rows refused"
			if err := l.FinishTradeFile(ctx, f, nil, ledger.ItemHeld, "held"); err != nil {
				t.Fatal(err)
			}
		case i%3 == 0:
			f.Status = "SUCCESS"
			if err := l.FinishTradeFile(ctx, f, nil, ledger.ItemUploaded, ""); err != nil {
				t.Fatal(err)
			}
		default:
			wantOpen = append(wantOpen, f.ID)
		}
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'recorded', provider_ref = '' WHERE run_id = $1 AND seller_id = 'S004'`, run.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`ANALYZE trade_files`); err != nil {
		t.Fatal(err)
	}
	wantGroups = 1
	if again := unfiled(); len(again) != 1 || again["S004"] != 1 {
		t.Fatalf("unfiled after S004's file was refused: %v, want S004 after attempt 1", again)
	}
	wantOpen = append(wantOpen, record("S004", 2).ID)

	var got []int64
	for after := int64(0); ; {
		page, err := l.OpenTradeFiles(ctx, run.ID, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("a page of %d, want at most 7", len(page))
		}
		for _, f := range page {
			got = append(got, f.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, wantOpen) {
		t.Fatalf("open files %v, want %v", got, wantOpen)
	}
	all, accepted, refused, err := l.TradeFileCounts(ctx, run.ID)
	if err != nil || all != sellers+1 || accepted != 9 || refused != 3 {
		t.Fatalf("counts: %d files, %d accepted, %d refused (%v); want %d, 9, 3", all, accepted, refused, err, sellers+1)
	}
	bad, err := l.RefusedTradeFiles(ctx, run.ID, 10)
	if err != nil || len(bad) != 3 || bad[0].SellerID != "S004" || bad[0].Reason != "2 rows refused" {
		t.Fatalf("refused %+v (%v), want S004, S014, S024", bad, err)
	}
	if bad, err := l.RefusedTradeFiles(ctx, run.ID, 2); err != nil || len(bad) != 2 || bad[1].SellerID != "S014" {
		t.Fatalf("the first two refused %+v (%v), want S004, S014", bad, err)
	}

	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.OpenTradeFilesQuery, run.ID, 0, 1000); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "trade_files_run_open") || strings.Contains(p, "Seq Scan") {
		t.Fatalf("the page of open trade files does not walk their index:\n%s", p)
	}
}

// Reconciliation reads a date's revenue shares in keyset pages along the
// effects' (kind, subject, attempt) key, within the date's subjects: each
// revenue share of the run once, in order, none of another date or kind,
// and no page reading the run's other effects or the ledger's other days.
func TestRevenueSharesOfADateGoByPages(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	var runs []*pipeline.Run
	for d := range 3 {
		run := openRun(t, l, day.AddDays(d))
		runs = append(runs, run)
		// 400 sellers' revenue shares (a second attempt for every tenth)
		// and 20,000 WeChat distributions, by SQL: their states do not
		// matter here.
		if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, sends)
			SELECT $1::bigint, 'revenue_share', 'RS/' || $2::text || '/S' || lpad(s::text, 4, '0') || '/USD', a, 'RS-' || $2 || '-' || s || '-' || a,
			       'USD', 100, CASE WHEN a = 1 AND s % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 1
			FROM generate_series(1, 400) s, generate_series(1, 2) a WHERE a = 1 OR s % 10 = 0
			UNION ALL
			SELECT $1::bigint, 'wechat_distribution', 'WX/' || $2 || '/O' || s, 1, 'WX-' || $2 || '-' || s, 'CNY', 1, 'succeeded', 1
			FROM generate_series(1, 20000) s`, run.ID, run.Key.Date.Compact()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DB().Exec(`ANALYZE effects`); err != nil {
		t.Fatal(err)
	}
	run := runs[1]
	prefix := "RS/" + run.Key.Date.Compact() + "/"
	var got []string
	for after := (pipeline.Effect{}); ; {
		page, err := l.EffectsOfKindAfter(ctx, run.ID, "revenue_share", prefix, after.Subject, after.Attempt, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("a page of %d, want at most 7", len(page))
		}
		for _, e := range page {
			if e.RunID != run.ID || e.Kind != "revenue_share" || !strings.HasPrefix(e.Subject, prefix) {
				t.Fatalf("%+v in the pages of run %d's revenue shares", e, run.ID)
			}
			got = append(got, fmt.Sprintf("%s#%d", e.Subject, e.Attempt))
		}
		after = page[len(page)-1]
	}
	if len(got) != 440 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 440 {
		t.Fatalf("%d revenue shares paged (sorted %v), want the run's 440 once each, in order", len(got), slices.IsSorted(got))
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.EffectsOfKindAfterQuery, run.ID, "revenue_share", prefix, "RS/"+run.Key.Date.Compact()+"0",
		prefix+"S0200/USD", 1, 100); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "effects_kind_subject_attempt_key") || strings.Contains(p, "Seq Scan") ||
		regexp.MustCompile(`(^|->  )Sort  `).MatchString(p) {
		t.Fatalf("the page of a date's revenue shares does not walk the effects' key from its cursor:\n%s", p)
	}
}

// TestAnOpenTradeFileSaysWhenItWasUploaded: the upload stage tells a file
// Infinia has lost from one it has not picked up yet by when its upload
// succeeded, read with the file from the upload's effect (keyed by the
// file's requestNo); zero until then.
func TestAnOpenTradeFileSaysWhenItWasUploaded(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	req := tradeKey(day, "S1", "USD", 1)
	if _, err := l.RecordTradeFile(ctx, pipeline.TradeFile{RunID: run.ID, Date: day, SellerID: "S1", Currency: "USD", Attempt: 1,
		RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x"}, shareChannels); err != nil {
		t.Fatal(err)
	}
	uploaded := func() time.Time {
		t.Helper()
		files, err := l.OpenTradeFiles(ctx, run.ID, 0, 10)
		if err != nil || len(files) != 1 {
			t.Fatalf("open files %v: %v", files, err)
		}
		return files[0].Uploaded
	}
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "trade_upload", Subject: "TD/" + req, Attempt: 1, Key: req, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if at := uploaded(); !at.IsZero() {
		t.Fatalf("uploaded at %v while its upload is in flight", at)
	}
	before := time.Now()
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "TD_"+req+".csv", ""); err != nil {
		t.Fatal(err)
	}
	if at := uploaded(); at.Before(before.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Fatalf("uploaded at %v, want about %v", at, before)
	}
}

// infiniaDay records n Infinia items of the day in run, O00, O01, ..., of
// sellers S0..S<sellers-1> in turn, 10 USD each, 9 of it the seller's.
func infiniaDay(t *testing.T, l *ledger.Ledger, run *pipeline.Run, n, sellers int) {
	t.Helper()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(context.Background(), run, func(w pipeline.ItemWriter) error {
		for i := range n {
			no := fmt.Sprintf("O%02d", i)
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: fmt.Sprintf("S%d", i%sellers), Channel: chInfinia,
				ProviderTxnID: "T" + no, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// firstFile records seller's first trade file of the run's day in USD,
// of its items items.
func firstFile(t *testing.T, l *ledger.Ledger, run *pipeline.Run, seller string, items int) pipeline.TradeFile {
	t.Helper()
	req := tradeKey(day, seller, "USD", 1)
	f, err := l.RecordTradeFile(context.Background(), pipeline.TradeFile{RunID: run.ID, Date: day, SellerID: seller, Currency: "USD", Attempt: 1,
		RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", SellerMinor: 9 * int64(items), Items: items}, shareChannels)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A trade file Infinia refused is sent again only when a person says so
// (SendAgain): its held items, and with refusedRows the rows Infinia
// refused, are in no file again, for the next attempt; the file is no
// longer for a person; the resolution is recorded once; and nothing else
// is sent again - a file Infinia accepted or has not decided, one of
// another date, a paid item.
func TestARefusedTradeFileIsSentAgainOnlyByAPerson(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	infiniaDay(t, l, run, 12, 3)
	files := map[string]pipeline.TradeFile{}
	for _, seller := range []string{"S0", "S1", "S2"} {
		files[seller] = firstFile(t, l, run, seller, 4)
	}
	// S0's file: Infinia refused O00's row and the file; S1's accepted;
	// S2's not decided yet.
	refused := files["S0"]
	refused.Status, refused.Reason = "FAILED", "1 rows refused, first O00: product type not allowed"
	if err := l.FinishTradeFile(ctx, refused, []pipeline.ProviderReject{{OrderNo: "O00", Reason: "product type not allowed"}}, ledger.ItemHeld, "held: trade file x was refused by Infinia"); err != nil {
		t.Fatal(err)
	}
	accepted := files["S1"]
	accepted.Status = "SUCCESS"
	if err := l.FinishTradeFile(ctx, accepted, nil, ledger.ItemUploaded, ""); err != nil {
		t.Fatal(err)
	}
	counts := func() string {
		t.Helper()
		all, acc, ref, err := l.TradeFileCounts(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		listed, err := l.RefusedTradeFiles(ctx, run.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d all, %d accepted, %d refused, %d listed", all, acc, ref, len(listed))
	}
	states := func() string {
		t.Helper()
		var s []string
		if err := l.DB().Select(&s, `SELECT order_no || ' ' || state || ' ' || provider_ref FROM items WHERE seller_id = 'S0' ORDER BY order_no`); err != nil {
			t.Fatal(err)
		}
		return strings.Join(s, ", ")
	}
	if got := counts(); got != "3 all, 1 accepted, 1 refused, 1 listed" {
		t.Fatalf("before: %s", got)
	}

	usage := func(what, name, note, want string) {
		t.Helper()
		_, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: name, Note: note, RefusedRows: true})
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("%s: %v, want a usage error saying %q", what, err, want)
		}
	}
	usage("an accepted file", accepted.Name, "n", "Infinia accepted it")
	usage("an open file", files["S2"].Name, "n", "Infinia has not refused it (BUILT)")
	usage("an unknown name", "TD_nothing.csv", "n", "no trade file of 2026-11-23 has this name")
	usage("no note", refused.Name, " ", "say why")
	if _, err := l.SendAgain(ctx, day.AddDays(1), ledger.SendAgainRequest{Name: refused.Name, Note: "n"}); pipeline.KindOf(err) != pipeline.KindUsage {
		t.Errorf("the file under another date: %v", err)
	}
	if got := states(); got != "O00 rejected "+refused.RequestNo+", O03 held "+refused.RequestNo+", O06 held "+refused.RequestNo+", O09 held "+refused.RequestNo {
		t.Fatalf("a refused send moved items: %s", got)
	}

	s, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: refused.Name, Note: "Infinia ticket 42: took none of it"})
	if err != nil || s.Before || s.Orders != 3 || s.Resolution.Kind != ledger.KindSentAgain || s.Resolution.Key != refused.RequestNo {
		t.Fatalf("sent again: %+v, %v", s, err)
	}
	if got := states(); got != "O00 rejected "+refused.RequestNo+", O03 recorded , O06 recorded , O09 recorded " {
		t.Fatalf("after: %s", got)
	}
	if got := counts(); got != "2 all, 1 accepted, 0 refused, 0 listed" {
		t.Fatalf("after: %s", got)
	}
	var next map[string]int
	if err := l.EachUnfiled(ctx, run.ID, shareChannels, func(p pipeline.Payable, last, _ int) error {
		if p.SellerID != "S0" || p.Items != 3 || p.Amount != 27 || last != 1 {
			return fmt.Errorf("unfiled %+v after attempt %d, want S0's 3 items of 27 after attempt 1", p, last)
		}
		next = map[string]int{p.SellerID: last}
		return nil
	}); err != nil || next == nil {
		t.Fatalf("unfiled: %v %v", next, err)
	}
	res, err := l.Resolutions(ctx, day)
	if err != nil || len(res) != 1 || res[0].Subject != refused.Name || res[0].Note != "Infinia ticket 42: took none of it" {
		t.Fatalf("resolutions %+v: %v", res, err)
	}
	// Asked again: recorded before, nothing moved, the first note stands.
	if again, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: refused.Name, Note: "another note"}); err != nil || !again.Before || again.Orders != 0 ||
		again.Resolution.Note != "Infinia ticket 42: took none of it" || again.RefusedLeft != 1 {
		t.Fatalf("sent again twice: %+v, %v", again, err)
	}
	if got := states(); !strings.HasPrefix(got, "O00 rejected") {
		t.Fatalf("the refused row moved on the second call: %s", got)
	}
	// The rows Infinia refused, left by the first call, go on a later one
	// that asks for them, under a resolution of their own; then no more.
	rows, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: refused.Name, Note: "O00's product type fixed", RefusedRows: true})
	if err != nil || rows.Before || rows.Orders != 1 || rows.Resolution.Kind != ledger.KindRefusedRowsSentAgain || rows.Resolution.Note != "O00's product type fixed" {
		t.Fatalf("the refused rows on a later call: %+v, %v", rows, err)
	}
	if got := states(); !strings.HasPrefix(got, "O00 recorded ,") {
		t.Fatalf("the refused row after it was sent again: %s", got)
	}
	if again, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: refused.Name, Note: "n", RefusedRows: true}); err != nil || !again.Before || again.Orders != 0 {
		t.Fatalf("sent again a third time: %+v, %v", again, err)
	}
	if res, err := l.Resolutions(ctx, day); err != nil || len(res) != 2 {
		t.Fatalf("resolutions after the rows went too: %+v, %v", res, err)
	}
}

// With refusedRows the rows Infinia refused go out again too; a file whose
// rows Infinia all refused has nothing held, and without it nothing moves.
func TestARefusedTradeFileSendsItsRefusedRowsWhenAsked(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	infiniaDay(t, l, run, 2, 1)
	f := firstFile(t, l, run, "S0", 2)
	f.Status = "FAILED"
	if err := l.FinishTradeFile(ctx, f, []pipeline.ProviderReject{{OrderNo: "O00", Reason: "bad"}, {OrderNo: "O01", Reason: "bad"}}, ledger.ItemHeld, "held"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: f.Name, Note: "n"}); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "--refused-rows sends them too") {
		t.Fatalf("nothing held, refused rows not asked for: %v", err)
	}
	if res, _ := l.Resolutions(ctx, day); len(res) != 0 {
		t.Fatalf("a send that moved nothing was recorded: %+v", res)
	}
	s, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: f.Name, Note: "layout fixed", RefusedRows: true})
	if err != nil || s.Orders != 2 {
		t.Fatalf("with the refused rows: %+v, %v", s, err)
	}
	var left int
	if err := l.DB().Get(&left, `SELECT count(*) FROM items WHERE state = 'recorded' AND provider_ref = '' AND reason = ''`); err != nil || left != 2 {
		t.Fatalf("%d items in no file, want 2: %v", left, err)
	}
}

// A trade file Infinia lost is given up when a person sends it again with
// the proof (SendAgainRequest.Lost): refused for its run with the proof,
// its upload - here of a delivery left unknown - failed with the cause in
// its history, and every item of it in no file again.
func TestALostTradeFileIsGivenUpAndSentAgain(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	infiniaDay(t, l, run, 3, 1)
	f := firstFile(t, l, run, "S0", 3)
	req := f.RequestNo
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "upload", Subject: "TD/" + req, Attempt: 1, Key: req, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectUnknown, "", "whether it was delivered is unknown"); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := l.TradeFileNamed(ctx, day, f.Name); err != nil || !ok || got.ID != f.ID {
		t.Fatalf("the file by its name: %+v %v %v", got, ok, err)
	}
	const proof = "Infinia did not know requestNo x at T"
	s, err := l.SendAgain(ctx, day, ledger.SendAgainRequest{Name: f.Name, Note: "ticket 9", Lost: proof})
	if err != nil || s.Orders != 3 || s.File.Status != "FAILED" {
		t.Fatalf("sent again: %+v, %v", s, err)
	}
	files, err := l.OpenTradeFiles(ctx, run.ID, 0, 10)
	if err != nil || len(files) != 0 {
		t.Fatalf("open files after it was given up: %v %v", files, err)
	}
	var status, reason string
	if err := l.DB().QueryRow(`SELECT status, reason FROM trade_files WHERE id = $1`, f.ID).Scan(&status, &reason); err != nil ||
		status != "FAILED" || !strings.Contains(reason, "lost by Infinia, given up by a person: "+proof) {
		t.Fatalf("the file: %s %q %v", status, reason, err)
	}
	after, _, err := l.LatestEffect(ctx, "upload", "TD/"+req)
	if err != nil || after.State != pipeline.EffectFailed || !strings.Contains(after.LastError, proof) || !strings.Contains(after.LastError, "ticket 9") {
		t.Fatalf("its upload: %+v %v", after, err)
	}
	history, err := l.EffectHistory(ctx, e.ID)
	if err != nil || history[len(history)-1].Cause != pipeline.CauseGivenUp {
		t.Fatalf("its upload's history %+v: %v", history, err)
	}
	if all, _, refused, err := l.TradeFileCounts(ctx, run.ID); err != nil || all != 0 || refused != 0 {
		t.Fatalf("counted after it was sent again: %d all, %d refused, %v", all, refused, err)
	}
	var unfiled int
	if err := l.DB().Get(&unfiled, `SELECT count(*) FROM items WHERE state = 'recorded' AND provider_ref = ''`); err != nil || unfiled != 3 {
		t.Fatalf("%d items in no file, want 3: %v", unfiled, err)
	}
}

// TestATradeFileTakesOnlyTheItemsInNoFile: a further trade file of a
// seller's date (an item verified late, a refused one sent again) takes
// the items in no file, never one of an earlier file (it would be sent to
// Infinia twice, and paid by either file's outcome), and one built from
// other items than the ledger's is refused, recording nothing. It guards
// RecordTradeFile's empty provider_ref and its count of the items it took
// (a mutation test found both untested).
func TestATradeFileTakesOnlyTheItemsInNoFile(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	infiniaDay(t, l, run, 12, 3) // S0: O00, O03, O06, O09
	first := firstFile(t, l, run, "S0", 4)
	if _, err := l.DB().Exec(`UPDATE items SET provider_ref = '' WHERE order_no = 'O09'`); err != nil {
		t.Fatal(err)
	}
	record := func(attempt, items int) error {
		req := tradeKey(day, "S0", "USD", attempt)
		_, err := l.RecordTradeFile(ctx, pipeline.TradeFile{RunID: run.ID, Date: day, SellerID: "S0", Currency: "USD", Attempt: attempt,
			RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", SellerMinor: 9 * int64(items), Items: items}, shareChannels)
		return err
	}
	// Built from two items while one alone is in no file: refused.
	if err := record(2, 2); err == nil || !strings.Contains(err.Error(), "moved while the file was built") {
		t.Fatalf("a file of 2 items recorded over 1 in no file: %v", err)
	}
	if err := record(2, 1); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	rows, err := l.DB().Query(`SELECT order_no, provider_ref FROM items WHERE seller_id = 'S0' ORDER BY order_no`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var no, ref string
		if err := rows.Scan(&no, &ref); err != nil {
			t.Fatal(err)
		}
		refs[no] = ref
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	second := tradeKey(day, "S0", "USD", 2)
	want := map[string]string{"O00": first.RequestNo, "O03": first.RequestNo, "O06": first.RequestNo, "O09": second}
	if !maps.Equal(refs, want) {
		t.Fatalf("items' files %v, want %v", refs, want)
	}
}
