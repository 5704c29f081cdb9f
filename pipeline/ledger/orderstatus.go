package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// OrderHistory is what the ledger holds of one order of a date, for a
// support engineer asked "what happened to order O?", in one document
// (`settle status --order`): each row the date's runs read with its order
// number, as read, with the reject a row became and why; its item (of the
// date: an order settles once, ever) with its split and rule; the attempt
// whose key the item carries (the payout that paid it, or is paying it),
// the carried entry its seller share went into, and the trade file that
// listed it last with the status its provider gave it, as status
// --subject reads them; its late refunds and the clawbacks they made (of
// any date: they come after the order's); what the reconciliation last
// found of it, its payout or its file (mismatches.csv's rows of the date,
// and of its payout's date); what the looks at the date's window found of
// it since the date was read (LateOrder: written into it late, changed or
// gone); and what a person resolved naming it, its payout or its file.
type OrderHistory struct {
	Date        string              `json:"date"`
	OrderNo     string              `json:"order_no"`
	Rows        []OrderRow          `json:"source_rows"`
	Items       []OrderItem         `json:"items"`
	Payouts     []OrderPayout       `json:"payouts"`
	Carried     []SubjectAdjustment `json:"carried_in"`
	Files       []SubjectFile       `json:"trade_files"`
	LateRefunds []OrderLateRefund   `json:"late_refunds"`
	Clawbacks   []SubjectAdjustment `json:"clawbacks"`
	// Reprices are the order's reprice entries (settle reprice).
	Reprices   []SubjectAdjustment `json:"reprices,omitempty"`
	Mismatches []SubjectMismatch   `json:"mismatches"`
	LateOrders []LateOrder         `json:"late_orders"` // what the looks at the date's window found of it
	Resolved   []Resolution        `json:"resolved"`
}

// OrderRow is a row of a run of the date with the order number: as read
// (Source; nil when the run no longer keeps it: its snapshot read again
// since), and the reject it became (nil: the row became the run's item,
// or the run has not split its rows yet).
type OrderRow struct {
	RunID  int64          `json:"run_id"`
	Shard  string         `json:"shard"`
	Seq    int64          `json:"seq"`
	Source *SubjectSource `json:"row"`
	Reject *OrderReject   `json:"reject,omitempty"`
}

// OrderReject is a row the run rejected: the row as the reject recorded
// it (rejects' text, cut to pipeline.MaxRejectText) and the reason.
type OrderReject struct {
	SellerID string `json:"seller_id"`
	Provider string `json:"provider"`
	Currency string `json:"currency"`
	Amount   string `json:"amount"`
	Refunded string `json:"refunded"`
	Reason   string `json:"reason"`
}

// OrderItem is the order's item, settled by a run of the date: its split,
// rule, state and reason (SubjectItem; Source is the row the run read, nil
// when not kept), its provider transaction, the trade file that listed it
// last (its requestNo, an Infinia item's) and the carried entry its
// seller share went into.
type OrderItem struct {
	RunID int64  `json:"run_id"`
	Shard string `json:"shard"`
	SubjectItem
	ProviderTxnID string `json:"provider_txn_id"`
	TradeFile     string `json:"trade_file,omitempty"`
	CarryID       *int64 `json:"carry_id,omitempty"`
}

// OrderPayout is the attempt whose key an item carries (its payout_key),
// of its date: an order carried once and paid later is paid by an attempt
// of a later date. Its history is status --subject's.
type OrderPayout struct {
	Date string `json:"date"`
	EffectReport
}

// OrderLateRefund is a refund of the order that arrived after its date
// (late_refunds), read on Date, with its state and reason; Currency is its
// item's ("" when the ledger settled no item of the order).
type OrderLateRefund struct {
	RefundNo  string     `json:"refund_no"`
	Amount    int64      `json:"amount_minor"`
	Currency  string     `json:"currency"`
	CreatedAt *time.Time `json:"created_at"`
	Date      string     `json:"business_date"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"`
}

// OrderHistory reads what the ledger holds of order orderNo of date d
// (OrderHistory), at one instant (View). An order no run of d read, nor
// split, nor a look at d's window named, is refused (pipeline.KindUsage),
// naming the date whose run settled it when there is one. Every read is by index but three: the row
// of the order's item is found in its run's snapshot (source_rows has no
// index by order number), read whole, as status --subject reads it; the
// mismatches of the date's runs (and of its payout's date), by their runs,
// all of them (mismatches has no index by order number either: a date's
// disagreements, fewer than its orders); and resolutions, a person's few
// rows, are read whole.
func (l *Ledger) OrderHistory(ctx context.Context, d pipeline.Date, orderNo string) (*OrderHistory, error) {
	var h *OrderHistory
	err := l.View(ctx, func(r Reader) error {
		var err error
		h, err = r.orderHistory(ctx, d, orderNo)
		return err
	})
	return h, err
}

func (r Reader) orderHistory(ctx context.Context, d pipeline.Date, orderNo string) (*OrderHistory, error) {
	h := &OrderHistory{Date: d.String(), OrderNo: orderNo, Rows: []OrderRow{}, Items: []OrderItem{}, Payouts: []OrderPayout{},
		Carried: []SubjectAdjustment{}, Files: []SubjectFile{}, LateRefunds: []OrderLateRefund{}, Clawbacks: []SubjectAdjustment{},
		Mismatches: []SubjectMismatch{}, LateOrders: []LateOrder{}, Resolved: []Resolution{}}
	fail := func(what string, err error) error {
		return fmt.Errorf("read the history of order %s of %s: %s: %w", orderNo, d, what, err)
	}

	// The date's runs, and those whose rows are not split yet (their
	// transform stage not done): neither item nor reject says what they
	// read of the order.
	rows, err := r.q.QueryContext(ctx, `SELECT id, shard_index, shard_count, NOT ('`+string(pipeline.StageTransform)+`' = ANY (stages_done))
		FROM runs WHERE business_date = $1 ORDER BY shard_count, shard_index`, d.String())
	if err != nil {
		return nil, fail("runs", err)
	}
	shards := map[int64]string{}
	var runIDs, scan []int64
	for rows.Next() {
		var id int64
		var sh pipeline.Shard
		var unsplit bool
		if err := rows.Scan(&id, &sh.Index, &sh.Count, &unsplit); err != nil {
			rows.Close()
			return nil, fail("runs", err)
		}
		shards[id] = sh.String()
		runIDs = append(runIDs, id)
		if unsplit {
			scan = append(scan, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("runs", err)
	}

	// Its item, by the primary key: of d, or of the date that settled it.
	var it OrderItem
	var other string
	err = r.q.QueryRowContext(ctx, `SELECT i.run_id, to_char(i.business_date, 'YYYY-MM-DD'), i.order_no, i.seller_id, i.channel, i.currency,
			i.gross_minor, i.refunded_minor, i.commission_minor, i.seller_minor, i.rule, i.state, i.reason, i.payout_key, i.provider_ref,
			i.provider_txn_id, COALESCE(i.trade_file, ''), i.carry_id
		FROM items i WHERE i.order_no = $1`, orderNo).Scan(&it.RunID, &other, &it.OrderNo, &it.SellerID, &it.Channel, &it.Currency,
		&it.Gross, &it.Refunded, &it.Commission, &it.Seller, &it.Rule, &it.State, &it.Reason, &it.PayoutKey, &it.ProviderRef,
		&it.ProviderTxnID, &it.TradeFile, &it.CarryID)
	switch _, ours := shards[it.RunID]; {
	case err == sql.ErrNoRows:
		other = ""
	case err != nil:
		return nil, fail("item", err)
	case ours:
		it.Shard, other = shards[it.RunID], ""
		h.Items = append(h.Items, it)
		scan = append(scan, it.RunID)
	}

	// The rows rejected, then each row as read: the rejects' by the
	// snapshot's key, the rows of the runs in scan by reading their
	// snapshots.
	rows, err = r.q.QueryContext(ctx, `SELECT run_id, seq, seller_id, provider, currency, amount, refunded, reason
		FROM rejects WHERE order_no = $1 AND order_no <> '' AND run_id = ANY ($2) ORDER BY run_id, seq`, orderNo, pq.Array(runIDs))
	if err != nil {
		return nil, fail("rejects", err)
	}
	type runSeq struct{ run, seq int64 }
	rejects := map[runSeq]*OrderReject{}
	var rejRuns, rejSeqs []int64
	for rows.Next() {
		var k runSeq
		var rej OrderReject
		if err := rows.Scan(&k.run, &k.seq, &rej.SellerID, &rej.Provider, &rej.Currency, &rej.Amount, &rej.Refunded, &rej.Reason); err != nil {
			rows.Close()
			return nil, fail("rejects", err)
		}
		rejects[k] = &rej
		rejRuns, rejSeqs = append(rejRuns, k.run), append(rejSeqs, k.seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("rejects", err)
	}
	var srcs []runSource
	if len(rejRuns) > 0 {
		// By the snapshot's key, its runs and seqs crossed: the pairs
		// of no reject are left.
		keyed, err := r.sourceRows(ctx, `s.run_id = ANY ($1) AND s.seq = ANY ($2)`, pq.Array(rejRuns), pq.Array(rejSeqs))
		if err != nil {
			return nil, fail("source rows", err)
		}
		for _, src := range keyed {
			if rejects[runSeq{src.run, src.Seq}] != nil {
				srcs = append(srcs, src)
			}
		}
	}
	if len(scan) > 0 {
		more, err := r.sourceRows(ctx, `s.run_id = ANY ($1) AND s.order_no = $2`, pq.Array(scan), orderNo)
		if err != nil {
			return nil, fail("source rows", err)
		}
		srcs = append(srcs, more...)
	}
	seen := map[runSeq]bool{}
	for _, src := range srcs {
		k := runSeq{src.run, src.Seq}
		if seen[k] {
			continue
		}
		seen[k] = true
		row := OrderRow{RunID: src.run, Shard: shards[src.run], Seq: src.Seq, Source: &src.SubjectSource, Reject: rejects[k]}
		h.Rows = append(h.Rows, row)
		if row.Reject == nil && len(h.Items) > 0 && h.Items[0].RunID == src.run && h.Items[0].Source == nil {
			h.Items[0].Source = row.Source
		}
	}
	for i, run := range rejRuns { // rejected rows the snapshot no longer keeps
		if k := (runSeq{run, rejSeqs[i]}); !seen[k] {
			h.Rows = append(h.Rows, OrderRow{RunID: run, Shard: shards[run], Seq: k.seq, Reject: rejects[k]})
		}
	}

	slices.SortFunc(h.Rows, func(a, b OrderRow) int { return cmp.Or(cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.Seq, b.Seq)) })

	// What the looks at the date's window found of it: of an order
	// written into the window late, read by no run, all there is.
	if h.LateOrders, err = r.lateOrders(ctx, d, orderNo, 3); err != nil { // a row of each kind at most
		return nil, fail("late orders", err)
	}

	if len(h.Items) == 0 && len(h.Rows) == 0 && len(h.LateOrders) == 0 {
		if other != "" {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--order", "%s: no row of %s's runs has this order; a run of %s settled it: settle status --date %s --order %s",
				orderNo, d, other, other, orderNo)
		}
		return nil, pipeline.Errorf(pipeline.KindUsage, "--order", "%s: no row of %s's runs has this order: is it of another date? orders.csv of that date names it",
			orderNo, d)
	}

	// Where its seller share went: the attempt of its payout key, the
	// entry it was carried into, the file that listed it last.
	keys := []string{orderNo}
	if len(h.Items) > 0 {
		it := h.Items[0]
		if it.PayoutKey != "" {
			atts, err := r.attempts(ctx, `e.idem_key = $1`, it.PayoutKey)
			if err != nil {
				return nil, fail("payout", err)
			}
			for _, a := range atts {
				h.Payouts = append(h.Payouts, OrderPayout{Date: a.date, EffectReport: a.EffectReport})
			}
			keys = append(keys, it.PayoutKey)
		}
		if it.CarryID != nil {
			if h.Carried, err = r.adjustments(ctx, `id = $1`, *it.CarryID); err != nil {
				return nil, fail("carried entry", err)
			}
		}
		if it.TradeFile != "" {
			if h.Files, err = r.tradeFiles(ctx, []string{it.TradeFile}); err != nil {
				return nil, fail("trade file", err)
			}
			keys = append(keys, it.TradeFile)
		}
	}

	// Its late refunds (late_refunds_order), the currency its item's, and
	// the clawbacks they made (adjustments_order).
	rows, err = r.q.QueryContext(ctx, `SELECT l.refund_no, l.amount_minor, COALESCE(i.currency, ''), l.created_at,
			to_char(l.business_date, 'YYYY-MM-DD'), l.state, l.reason
		FROM late_refunds l LEFT JOIN items i ON i.order_no = l.order_no
		WHERE l.order_no = $1 ORDER BY l.business_date, l.refund_no`, orderNo)
	if err != nil {
		return nil, fail("late refunds", err)
	}
	for rows.Next() {
		var lr OrderLateRefund
		if err := rows.Scan(&lr.RefundNo, &lr.Amount, &lr.Currency, &lr.CreatedAt, &lr.Date, &lr.State, &lr.Reason); err != nil {
			rows.Close()
			return nil, fail("late refunds", err)
		}
		h.LateRefunds = append(h.LateRefunds, lr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("late refunds", err)
	}
	if h.Clawbacks, err = r.adjustments(ctx, `order_no = $1 AND kind = '`+string(pipeline.AdjustClawback)+`'`, orderNo); err != nil {
		return nil, fail("clawbacks", err)
	}
	if h.Reprices, err = r.adjustments(ctx, `order_no = $1 AND kind = '`+pipeline.AdjustReprice+`'`, orderNo); err != nil {
		return nil, fail("reprices", err)
	}

	// What the reconciliation last found: of the order or its trade file
	// on the date, of its payout on the payout's date (a later one for an
	// order carried and paid later).
	dates := []string{d.String()}
	for _, p := range h.Payouts {
		dates = append(dates, p.Date)
	}
	if h.Mismatches, err = r.mismatches(ctx, `r.business_date = ANY ($1::date[]) AND (m.order_no = $2 OR m.subject = ANY ($3))`,
		pq.Array(dates), orderNo, pq.Array(keys)); err != nil {
		return nil, fail("mismatches", err)
	}

	if h.Resolved, err = r.resolutionsNaming(ctx, nil, keys); err != nil {
		return nil, fail("resolutions", err)
	}
	return h, nil
}
