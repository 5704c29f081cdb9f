package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// resolveCommand records what a person settled outside settle, so that a
// run of the date can end 0 once nothing else is left:
//
//   - --subject: a failed WeChat Pay payout whose order WeChat Pay released
//     to the seller (ledger.Resolve): the date's runs stop counting it as a
//     failed payout;
//   - --order: a WeChat Pay transaction settle holds, which a person then
//     settled with WeChat Pay by hand (settleHeldOutside); with --reject,
//     a Pay Protocol order settle holds for its failed payment, which a
//     person says will never be paid (rejectHeldFailed): rejected for
//     good, no longer verified nor counted as held (the reconciliation
//     still asks about it); with --reopen, such an order (or one an
//     older settle rejected for its failed payment) that Pay Protocol
//     answers paid since (reopenRejected): held again, for the date's
//     next run to verify and settle once;
//   - --subject with --paid or --not-paid: an Infinia revenue share held
//     for a person because Infinia's status query no longer knows it,
//     planned longer ago than it remembers (pipeline.ErrPastMemory) or
//     answered by Infinia before (its reference recorded), which
//     Infinia's statement shows paid, or never paid
//     (resolvePastMemory): succeeded, or failed and paid again under a
//     new requestNo by the next run; or a WeChat Pay distribution or
//     unfreeze held so, which WeChat Pay's records show applied (it
//     holds nothing of the transaction any more) or not (it still holds
//     some) (resolveWeChatPastMemory): succeeded, its order settled by
//     the next run, or failed and sent under a new out_order_no;
//   - --seller with --reject: a seller whose orders settle holds for its
//     account (none at the provider that pays them, one it cannot use, or
//     another seller's too), which the platform will never give (the
//     seller left, say) (rejectSellerHolds): its held orders of the date
//     rejected for good, its seller not paid for them by settle;
//   - --trade-file: a trade file Infinia refused, whose held orders (and
//     with --refused-rows the rows Infinia refused) a person sends again
//     once the cause is fixed, or one Infinia lost (infiniapay's
//     Client.LostFile asks Infinia), whose orders a person sends again
//     (ledger.SendAgain): the next run of the date uploads them in a
//     further trade file.
func resolveCommand(cfg *config) *cli.Command {
	flags := append(ledgerFlags(ledgerURLUsage), dateFlag("business date YYYY-MM-DD (required)"),
		&cli.StringFlag{Name: "subject", Usage: "a failed payout's subject, as payouts.csv gives it"},
		&cli.StringFlag{Name: "order", Usage: "a held WeChat Pay order, as orders.csv gives it, that a person settled with WeChat Pay by hand (needs the --wechat-* flags: settle asks WeChat Pay that it holds nothing of it any more); with --reject, a Pay Protocol order held for its failed payment"},
		&cli.StringFlag{Name: flagWXSubMchID, Usage: "with --order: the sub-merchant a held WeChat Pay order's transaction was paid under, when it is not the one the date's run recorded for its seller (the seller's sub-merchant changed since, or the platform's sellers gave a wrong one: WeChat Pay refuses the transaction under the recorded one); settle asks WeChat Pay there that it holds nothing of it"},
		&cli.BoolFlag{Name: "reopen", Usage: "with --order: a Pay Protocol order rejected for its failed payment (by --reject, or by an older settle) that Pay Protocol answers paid since, in the order's currency and amount (the reconciliation reports it): held again, so that the date's next run verifies it and settles it once (needs the --payprotocol-* flags: settle asks Pay Protocol that it is paid)"},
		&cli.BoolFlag{Name: "reject", Usage: "with --order: a Pay Protocol order settle holds because its payment failed, which will never be paid (the buyer will not pay it late): rejected for good, its seller not paid for it (needs the --payprotocol-* flags: settle asks Pay Protocol that the payment is still failed)"},
		&cli.StringFlag{Name: "seller", Usage: "with --reject: a seller (the platform's id, as orders.csv gives it) whose orders of the date settle holds for its account, which the platform will never give: every one of them rejected for good, the seller not paid for them by settle"},
		&cli.StringFlag{Name: "trade-file", Usage: "a trade file Infinia refused, by its name as the run's output and orders.csv give it, whose held orders go out again in a further trade file of the date at its next run (once the cause is fixed and Infinia confirms it took none of the file); or one Infinia lost (it does not know it --infinia-lost-after after its upload; needs the --infinia-* flags: settle asks Infinia)"},
		&cli.BoolFlag{Name: "all-refused", Usage: "every trade file of the date Infinia refused and no person sent again (after a layout mistake, say: once Infinia confirms it took none of them), each as --trade-file would, with the one --note; with --refused-rows, the refused rows of those sent again without them too"},
		&cli.BoolFlag{Name: "paid", Usage: "with --subject: an Infinia revenue share held because Infinia's status query no longer knows it (planned longer ago than --infinia-query-memory, or answered by Infinia before, its reference recorded) that Infinia's statement shows paid: succeeded, the seller paid by it once, never sent again (needs the --infinia-* flags: settle asks Infinia that it still does not know it, and that its available share of the seller shows it taken; beyond that it cannot check the statement: recorded paid when it was not, the seller is not paid for it); or a WeChat Pay distribution or unfreeze held so (--wechat-query-memory) that WeChat Pay's records show applied, of whose transaction WeChat Pay holds nothing any more (needs the --wechat-* flags: settle asks WeChat Pay both)"},
		&cli.BoolFlag{Name: "not-paid", Usage: "with --subject: such a revenue share that Infinia's statement shows never paid: failed, so that the date's next run pays the seller's balance under a new requestNo (its own is never sent again; needs the --infinia-* flags; settle refuses it when Infinia's available share of the seller shows it taken, and cannot check the statement beyond that: recorded not paid when Infinia paid it, the seller is paid twice unless Infinia's available share of the seller is short); or such a WeChat Pay distribution or unfreeze never applied, of whose transaction WeChat Pay still holds some: the next run sends it under a new out_order_no while WeChat Pay holds the order's amount (needs the --wechat-* flags)"},
		&cli.BoolFlag{Name: "refused-rows", Usage: "with --trade-file or --all-refused: send again the rows Infinia refused too (their cause fixed), not only the held rest"},
		&cli.StringFlag{Name: "note", Usage: "how it was settled: who, where, the reference (required)"},
		&cli.StringFlag{Name: flagActor, EnvVars: []string{"SETTLE_ACTOR"}, Usage: "who decides this, recorded with the resolution and shown by settle status (default: the OS user running settle; \"unknown\" when it has none)"})
	return &cli.Command{
		Name:  "resolve",
		Usage: "record that a revenue share held past Infinia's memory, or a WeChat Pay distribution or unfreeze held past WeChat Pay's, was paid (--subject --paid) or never was (--subject --not-paid), that a failed WeChat Pay payout (--subject) or a held WeChat Pay order (--order) of a date was settled outside settle, that a Pay Protocol order held for its failed payment will never be paid (--order --reject) or, rejected so, was paid after all (--order --reopen), or that a trade file Infinia refused (--trade-file) can go out again (--note how)",
		Flags: append(append(flags, weChatFlags()...), infiniaFlags()...),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			given := 0
			for _, f := range []string{"subject", "order", "trade-file", "seller"} {
				if c.String(f) != "" {
					given++
				}
			}
			files := c.String("trade-file") != "" || c.Bool("all-refused")
			if c.Bool("all-refused") {
				given++
			}
			if given != 1 {
				return pipeline.Errorf(pipeline.KindUsage, "resolve", "give exactly one of --subject (a failed payout, as payouts.csv gives it), --order (a held order, as orders.csv gives it), --seller (with --reject: a seller whose orders are held for its account), --trade-file (a refused trade file, as orders.csv gives it) and --all-refused")
			}
			if c.IsSet(flagWXSubMchID) && (c.String("order") == "" || c.Bool("reject") || c.Bool("reopen")) {
				return pipeline.Errorf(pipeline.KindUsage, "--"+flagWXSubMchID, "only with --order, without --reject or --reopen (a held WeChat Pay order settled by hand under the sub-merchant its transaction was paid under)")
			}
			if c.Bool("reopen") && (c.String("order") == "" || c.Bool("reject")) {
				return pipeline.Errorf(pipeline.KindUsage, "--reopen", "only with --order, without --reject (a Pay Protocol order rejected for its failed payment, paid since, as mismatches.csv gives it)")
			}
			if c.Bool("reject") && c.String("order") == "" && c.String("seller") == "" {
				return pipeline.Errorf(pipeline.KindUsage, "--reject", "only with --order (a Pay Protocol order held for its failed payment, as orders.csv gives it) or --seller (a seller whose orders are held for its account)")
			}
			if c.String("seller") != "" && !c.Bool("reject") {
				return pipeline.Errorf(pipeline.KindUsage, "--seller", "only with --reject: settle pays a seller's orders held for its account once the platform's sellers give it one, at the date's next run")
			}
			if c.Bool("paid") || c.Bool("not-paid") {
				if c.String("subject") == "" || c.Bool("paid") == c.Bool("not-paid") {
					return pipeline.Errorf(pipeline.KindUsage, "--paid", "give one of --paid and --not-paid, with --subject (a revenue share held past Infinia's memory, or a WeChat Pay distribution or unfreeze held past WeChat Pay's, as the held line and payouts.csv give it)")
				}
			}
			if c.Bool("refused-rows") && !files {
				return pipeline.Errorf(pipeline.KindUsage, "--refused-rows", "only with --trade-file or --all-refused")
			}
			if c.String("trade-file") != "" {
				// --infinia-lost-after decides whether a file is given up.
				if err := checkWaits(c); err != nil {
					return err
				}
			}
			actor, err := actorOf(c)
			if err != nil {
				return err
			}
			l, err := cfg.openLedger(c.Context, c, true)
			if err != nil {
				return err
			}
			defer l.Close()
			l.SetActor(actor)
			switch {
			case c.Bool("reject") && c.String("seller") != "":
				return rejectSellerHolds(c, cfg, l, d)
			case c.Bool("reject"):
				return rejectHeldFailed(c, cfg, l, d)
			case c.Bool("reopen"):
				return reopenRejected(c, cfg, l, d)
			case c.String("order") != "":
				return settleHeldOutside(c, cfg, l, d)
			case c.String("trade-file") != "":
				return sendTradeFileAgain(c, cfg, l, d)
			case c.Bool("all-refused"):
				return sendRefusedFilesAgain(c, cfg, l, d)
			case c.Bool("paid") || c.Bool("not-paid"):
				return resolvePastMemory(c, cfg, l, d)
			}
			// A WeChat Pay subject names its order ("" for any other: refused).
			orderNo, _ := wechatpay.OrderOfSubject(c.String("subject"))
			r, before, err := l.Resolve(c.Context, d, c.String("subject"), orderNo, c.String("note"))
			if err != nil {
				return err
			}
			when := "resolved"
			if before {
				when = "already resolved"
			}
			fmt.Fprintf(cfg.stdout, "%s %s %s (%s) at %s by %s: %s\nthe next run of %s no longer counts it as a failed payout\n",
				when, r.Kind, r.Subject, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note, d)
			return nil
		},
	}
}

// flagActor names who decides a resolution.
const flagActor = "actor"

// actorOf is who decides what settle resolve records: --actor
// (SETTLE_ACTOR), else the OS user running it (its name, else its uid),
// else "unknown" - recorded with the resolution either way, so that a
// script that names no one still works and the record says what settle
// knew. An actor of blanks or control characters is refused (exit 2).
func actorOf(c *cli.Context) (string, error) {
	if c.IsSet(flagActor) {
		a := strings.TrimSpace(c.String(flagActor))
		if a == "" || strings.ContainsFunc(a, unicode.IsControl) {
			return "", pipeline.Errorf(pipeline.KindUsage, "--"+flagActor, "%q: name the person deciding this (a name, an e-mail), in one line", c.String(flagActor))
		}
		return a, nil
	}
	return osUser(), nil
}

// osUser names the OS user running settle: its name, else "uid N" (a
// container's user with no entry in its /etc/passwd), else "unknown".
func osUser() string {
	if u, err := user.Current(); err == nil && strings.TrimSpace(u.Username) != "" {
		return u.Username
	}
	if uid := os.Getuid(); uid >= 0 {
		return fmt.Sprintf("uid %d", uid)
	}
	return "unknown"
}

// settleHeldOutside records that a person settled by hand, with WeChat
// Pay, a WeChat Pay order settle holds (ledger.SettleOutside): under the
// date's lock, so that no run of it works meanwhile, and only once WeChat
// Pay answers that it holds nothing of the order's transaction any more
// (while it holds some, settle can still settle it). The item is then
// paid, its reason saying so with the note, its failed request (if any)
// resolved, and no run sends anything for it again. A request whose
// outcome is unknown is refused (a run finds out what became of it),
// unless WeChat Pay's order query no longer knows it, sent longer ago than
// it remembers (forgottenByWeChat): the stage holds that one for a person
// on every run, and settled by hand it never applied, so it is recorded
// failed, not applied, and resolved.
func settleHeldOutside(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, orderNo := c.Context, c.String("order")
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "say how the order was settled: who, where, the reference")
	}
	w, err := cfg.weChatFromFlags(c)
	if err != nil {
		return err
	}
	release, err := l.LockDate(ctx, d)
	if err != nil {
		return err
	}
	defer release()
	it, err := l.Item(ctx, d, orderNo)
	if err != nil {
		return err
	}
	if it.Channel != wechatpay.Channel || it.State != pipeline.ItemRecorded || !strings.HasPrefix(it.Reason, pipeline.HeldPrefix) {
		hint := ""
		if it.Channel == payprotocol.Channel && it.State == pipeline.ItemHeld && strings.HasPrefix(it.Reason, payprotocol.HeldFailedPayment) {
			hint = "; if its payment will never arrive, --reject rejects it for good"
		}
		return pipeline.Errorf(pipeline.KindUsage, "--order", "%s is a %s order, %s (%s): only a WeChat Pay order settle holds is settled by hand%s",
			orderNo, it.Channel, it.State, cmp.Or(it.Reason, "no reason recorded"), hint)
	}
	if w == nil {
		// Asked after the order is read: one that is no held WeChat Pay
		// order says so (a Pay Protocol order held for its failed payment
		// is rejected with --reject, not settled by hand).
		return pipeline.Errorf(pipeline.KindUsage, "--"+flagWXURL, "required with --order: settle asks WeChat Pay what it still holds of the order")
	}
	if err := sameAccount(ctx, l, it.RunID, wechatpay.KindDistribution, w.account, "order "+orderNo); err != nil {
		return err
	}
	sub, err := l.AccountOf(ctx, it.RunID, wechatpay.SellerAccount, it.SellerID)
	if err != nil {
		return err
	}
	recorded, given := sub, ""
	if c.IsSet(flagWXSubMchID) {
		// The transaction's own sub-merchant, when the run's is not
		// (WeChat Pay refuses a transaction under another): the run
		// read its sellers once, and the order was held on every run
		// with no way out (found by a review).
		given = c.String(flagWXSubMchID)
		if err := wechatpay.CheckSubMchID(given); err != nil {
			return pipeline.Errorf(pipeline.KindUsage, "--"+flagWXSubMchID, "%q: %v", given, err)
		}
		sub = given
	}
	if sub == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: its seller %s has no WeChat Pay sub-merchant recorded with its run", orderNo, it.SellerID)
	}
	left, err := w.client.RemainingAmount(ctx, sub, it.TransactionID)
	var we *wechatpay.Error
	if errors.As(err, &we) && we.Refused() {
		// A definite refusal (a transaction WeChat Pay does not know, say):
		// asking again will not change it, and settle cannot check that
		// WeChat Pay holds nothing of it (exit 2, not 1: found by an
		// operator's walkthrough).
		where := "; if the transaction was paid under another sub-merchant, give that one with --" + flagWXSubMchID
		if given != "" {
			where = " (is " + given + ", given with --" + flagWXSubMchID + ", the sub-merchant the transaction was paid under?)"
		}
		return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: WeChat Pay refuses to say what it holds of transaction %s at sub-merchant %s (%v): settle cannot check that it was settled; nothing recorded. Settle it with WeChat Pay; the order stays held%s",
			orderNo, it.TransactionID, sub, err, where)
	}
	if err != nil {
		return fmt.Errorf("order %s: what WeChat Pay holds of transaction %s at sub-merchant %s: %w (nothing recorded)", orderNo, it.TransactionID, sub, err)
	}
	if left.Amount != 0 {
		can := "settle can still settle it"
		if given != "" && given != recorded {
			// Not under the run's sub-merchant, which WeChat Pay refuses.
			can = "settle it by hand at WeChat Pay there first (settle's runs of the date ask at sub-merchant " + cmp.Or(recorded, "none") + ")"
		}
		return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: WeChat Pay still holds %s of transaction %s at sub-merchant %s (the order's amount less refunds is %s): %s; nothing recorded",
			orderNo, pipeline.Money{Minor: left.Amount, Currency: left.Currency}, it.TransactionID, sub, pipeline.Money{Minor: it.Gross - it.Refunded, Currency: it.Currency}, can)
	}
	proof := fmt.Sprintf("WeChat Pay held nothing of transaction %s at sub-merchant %s at %s", it.TransactionID, sub, cfg.clock().UTC().Format(time.RFC3339))
	if given != "" && given != recorded {
		proof += fmt.Sprintf(" (given with --%s; the run recorded %s for seller %s)", flagWXSubMchID, cmp.Or(recorded, "none"), it.SellerID)
	}
	if recorded == "" {
		recorded = sub
	}
	// A request of the order went out under the run's sub-merchant: it
	// is asked about there (asked under another, WeChat Pay need not know
	// it, which read as forgotten).
	forgotten, err := forgottenByWeChat(c, cfg, l, w, d, orderNo, recorded, it.TransactionID)
	if err != nil {
		return err
	}
	it, res, err := l.SettleOutside(ctx, d, wechatpay.Channel, orderNo, wechatpay.Subject(d, orderNo), proof, c.String("note"), forgotten)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.stdout, "order %s (transaction %s) is paid: %s\n", orderNo, it.TransactionID, it.Reason)
	switch {
	case res != nil && forgotten != nil && res.Key == forgotten.Key:
		fmt.Fprintf(cfg.stdout, "its %s %s (%s), which WeChat Pay no longer knows, is recorded failed, not applied: the transaction was settled by hand\n", res.Kind, res.Subject, res.Key)
	case res != nil:
		fmt.Fprintf(cfg.stdout, "resolved its failed %s %s (%s)\n", res.Kind, res.Subject, res.Key)
	}
	fmt.Fprintf(cfg.stdout, "no run of %s sends anything for it again\n", d)
	return nil
}

// forgottenByWeChat returns the proof that WeChat Pay's order query no
// longer knows the latest request of a held order whose outcome is unknown
// (sent longer ago than --wechat-query-memory, pipeline.ErrPastMemory, or
// answered by WeChat Pay before, its order id recorded: the stage holds it
// for a person either way), asked as a run asks; nil when the order
// has no such request, or WeChat Pay knows it or answers otherwise
// (ledger.SettleOutside then refuses a request in flight, as before). A
// transaction settled by hand while such a request was held could only be
// recorded by resolving the request paid (--subject --paid: WeChat Pay
// holding nothing), which credited it with what the person moved.
func forgottenByWeChat(c *cli.Context, cfg *config, l *ledger.Ledger, w *weChatSetup, d pipeline.Date, orderNo, sub, txnID string) (*ledger.Forgotten, error) {
	ctx := c.Context
	e, found, err := latestWeChatEffect(ctx, l, wechatpay.Subject(d, orderNo))
	if err != nil || !found || (e.State != pipeline.EffectSent && e.State != pipeline.EffectUnknown) {
		return nil, err
	}
	out, err := askWeChat(ctx, w, e, sub, txnID)
	switch {
	case err == nil && out.Status == pipeline.OutcomeNotFound && e.ProviderRef != "":
		// WeChat Pay answered it before (its order id) and does not know
		// it now, within its memory too: held by every run
		// (pipeline.ApplyEffect), as one past the memory.
		return &ledger.Forgotten{Key: e.Key, Proof: fmt.Sprintf("WeChat Pay's order query did not know out_order_no %s at %s, which WeChat Pay answered before (order %s)",
			e.Key, cfg.clock().UTC().Format(time.RFC3339), e.ProviderRef)}, nil
	case err == nil:
		return nil, nil // WeChat Pay knows it: a run learns what became of it
	case !errors.Is(err, pipeline.ErrPastMemory):
		// Not an answer (its order query failed a moment, or refused):
		// "in flight, run the date again" would send the person to a run
		// that holds the order again.
		return nil, fmt.Errorf("%s: ask WeChat Pay's order query whether it still knows %s %s (out_order_no %s): %w; nothing recorded, ask again with the same command",
			orderNo, e.Kind, e.Subject, e.Key, err)
	}
	return &ledger.Forgotten{Key: e.Key, Proof: fmt.Sprintf("WeChat Pay's order query did not know out_order_no %s at %s, planned %s before, past the %s it is taken to remember",
		e.Key, cfg.clock().UTC().Format(time.RFC3339), pipeline.RoundDays(cfg.clock().Sub(e.Planned)), pipeline.RoundDays(w.memory))}, nil
}

// latestWeChatEffect is the latest WeChat Pay request of a subject: its
// distribution, or else its unfreeze (a transaction has one or the other).
func latestWeChatEffect(ctx context.Context, l *ledger.Ledger, subject string) (e pipeline.Effect, found bool, err error) {
	for _, kind := range []string{wechatpay.KindDistribution, wechatpay.KindUnfreeze} {
		if e, found, err = l.LatestEffect(ctx, kind, subject); err != nil || found {
			break
		}
	}
	return e, found, err
}

// askWeChat asks WeChat Pay's order query what became of e, a request of
// transaction txnID at sub-merchant sub, as a run asks (an unfreeze carries
// no commission): pipeline.ErrPastMemory when WeChat Pay no longer knows
// it and it was planned longer ago than --wechat-query-memory.
func askWeChat(ctx context.Context, w *weChatSetup, e pipeline.Effect, sub, txnID string) (pipeline.Outcome, error) {
	a := wechatpay.NewAdapter(w.client, w.receiver)
	a.Memory = w.memory
	txn := wechatpay.Txn{SubMchID: sub, TransactionID: txnID, Currency: e.Currency, Commission: e.Amount}
	if e.Kind == wechatpay.KindUnfreeze {
		txn.Commission = 0
	}
	out, _, err := a.Query(ctx, e, txn)
	return out, err
}

// rejectHeldFailed records that a person rejected for good a Pay
// Protocol order settle holds because Pay Protocol answered its payment
// failed (payprotocol.HeldFailedPayment), the payment never to arrive
// (ledger.RejectHeld): under the date's lock, so that no run of it works
// meanwhile, and only once Pay Protocol answers that the payment is still
// failed (paid since, settle settles it: a run of the date verifies it).
// The item is then rejected, its reason saying so with the note, and no
// run verifies, pays or counts it as held again; its seller is not paid
// for it. An order a person rejected before is said and left as it is.
func rejectHeldFailed(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, orderNo := c.Context, c.String("order")
	pp, it, release, err := payProtocolOrder(c, cfg, l, d, "--reject", "say why the payment will never arrive: who, what Pay Protocol or the buyer said, the reference", "is still failed")
	if err != nil {
		return err
	}
	defer release()
	proof := ""
	if it.State != pipeline.ItemRejected {
		// Checked before Pay Protocol is asked (RejectHeld checks again,
		// in its transaction).
		if it.Channel != payprotocol.Channel || it.State != pipeline.ItemHeld || !strings.HasPrefix(it.Reason, payprotocol.HeldFailedPayment) {
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s is a %s order, %s (%s): only a Pay Protocol order settle holds for its failed payment is rejected by hand",
				orderNo, it.Channel, it.State, cmp.Or(it.Reason, "no reason recorded"))
		}
		p, err := pp.client.PaymentDetail(ctx, it.TransactionID, "")
		if err != nil {
			return fmt.Errorf("order %s: Pay Protocol's payment detail of %s: %w (nothing recorded)", orderNo, it.TransactionID, err)
		}
		if p.Status != payprotocol.PaymentFailed {
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: Pay Protocol answers its payment %s %s now, not failed: run the date again, settle verifies it; nothing recorded",
				orderNo, it.TransactionID, p.Status)
		}
		proof = fmt.Sprintf("Pay Protocol answered payment %s failed at %s", it.TransactionID, cfg.clock().UTC().Format(time.RFC3339))
	}
	it, before, err := l.RejectHeld(ctx, d, payprotocol.Channel, orderNo, payprotocol.HeldFailedPayment, proof, c.String("note"))
	if err != nil {
		return err
	}
	when := "is rejected"
	if before {
		when = "was rejected before"
	}
	fmt.Fprintf(cfg.stdout, "order %s (Pay Protocol payment %s) %s: %s\n", orderNo, it.TransactionID, when, it.Reason)
	fmt.Fprintf(cfg.stdout, "no run of %s verifies it again; its seller is not paid for it (the reconciliation asks Pay Protocol about it while its date is reconciled: paid after all, it is reported for a person, and --reopen settles it)\n", d)
	// The date's run still ends needing a person, and the night names it
	// waiting on one, until a run of the date finds nothing held.
	fmt.Fprintf(cfg.stdout, "run the date again (settle run --date %s): its last run ended needing a person, and so it stays until then\n", d)
	return nil
}

// rejectSellerHolds records that a person rejected for good every order
// of date d that settle holds for the account of seller --seller
// (pipeline.SellerHoldPrefix), the platform never to give one: under the
// date's lock, so that no run of it works meanwhile, each item rejected
// with pipeline.RejectedByPerson, the hold and the note (ledger.RejectHeld,
// one resolution an order). No run releases, pays or counts them again.
func rejectSellerHolds(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, seller := c.Context, c.String("seller")
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "say why the seller will never have an account: who, what the platform said, the reference")
	}
	release, err := l.LockDate(ctx, d)
	if err != nil {
		return err
	}
	defer release()
	held, err := l.SellerHeldOrders(ctx, d, seller)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		// Said again (a retry whose answer was lost, a second person):
		// done before, nothing to change, as --order --reject said again
		// is; it was exit 2, "fix what the error names".
		before, err := l.SellerRejectedHeldCount(ctx, d, seller)
		if err != nil {
			return err
		}
		if before > 0 {
			fmt.Fprintf(cfg.stdout, "%d orders of seller %s held for its account were rejected before (settle status lists them, with the note): nothing changed; no run of %s pays them\n",
				before, seller, d)
			return nil
		}
		return pipeline.Errorf(pipeline.KindUsage, "--seller", "%s: no order of %s is held for its account (orders.csv gives the held ones and their seller)", seller, d)
	}
	shares := map[pipeline.Currency]int64{}
	for _, h := range held {
		it, err := l.Item(ctx, d, h.OrderNo)
		if err != nil {
			return err
		}
		// The reason starts with pipeline.RejectedSellerHold.
		proof := fmt.Sprintf("held for its seller's account at %s: %s", cfg.clock().UTC().Format(time.RFC3339), strings.TrimPrefix(it.Reason, pipeline.SellerHoldPrefix))
		if _, _, err := l.RejectHeld(ctx, d, h.Channel, h.OrderNo, pipeline.SellerHoldPrefix, proof, c.String("note")); err != nil {
			return fmt.Errorf("order %s: %w (the orders before it are rejected)", h.OrderNo, err)
		}
		shares[it.Currency] += it.SellerShare
	}
	var share []string
	for _, cur := range slices.Sorted(maps.Keys(shares)) {
		share = append(share, pipeline.Money{Minor: shares[cur], Currency: cur}.String())
	}
	fmt.Fprintf(cfg.stdout, "%d orders of seller %s held for its account are rejected (seller shares %s): no run of %s pays them; the platform settles with the seller, or its buyers, outside settle\n",
		len(held), seller, strings.Join(share, ", "), d)
	fmt.Fprintf(cfg.stdout, "run the date again (settle run --date %s): its last run ended needing a person, and so it stays until then\n", d)
	return nil
}

// payProtocolOrder opens what settle resolve --order --reject and
// --reopen (action) share: the note, which must say noteWhy; Pay
// Protocol's client, which the command asks that the payment answers
// (asks); the date's lock, so that no run of it works meanwhile (release
// it); and the order's item, read under the lock.
func payProtocolOrder(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date, action, noteWhy, asks string) (
	*payProtocolSetup, ledger.HeldItem, func() error, error) {
	if strings.TrimSpace(c.String("note")) == "" {
		return nil, ledger.HeldItem{}, nil, pipeline.Errorf(pipeline.KindUsage, "--note", "%s", noteWhy)
	}
	pp, err := cfg.payProtocolFromFlags(c)
	if err != nil {
		return nil, ledger.HeldItem{}, nil, err
	}
	if pp == nil {
		return nil, ledger.HeldItem{}, nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagPPURL, "required with --order %s: settle asks Pay Protocol that the payment %s", action, asks)
	}
	release, err := l.LockDate(c.Context, d)
	if err != nil {
		return nil, ledger.HeldItem{}, nil, err
	}
	it, err := l.Item(c.Context, d, c.String("order"))
	if err != nil {
		release()
		return nil, ledger.HeldItem{}, nil, err
	}
	return pp, it, release, nil
}

// reopenRejected takes back the rejection of a Pay Protocol order rejected
// for its failed payment - by a person (rejectHeldFailed) or by an older
// settle (payprotocol.RejectedReasons) - whose payment Pay Protocol
// answers paid since, in the order's currency and amount (the
// reconciliation reports it, payprotocol.MatchRejected): under the date's
// lock, so that no run of it works meanwhile, and only once Pay Protocol
// answers so now, the item is held again (ledger.ReopenRejected,
// payprotocol.HeldReopened) with the note. Nothing is sent here: the
// date's next run verifies the payment again, as it verifies any held
// payment, and settles it once through its keyed trade file and revenue
// share. An order reopened before and not decided since is said and left
// as it is. Of a date repriced meanwhile (settle reprice left the order
// alone, rejected), it says what adjusts the order once it is paid.
func reopenRejected(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, orderNo := c.Context, c.String("order")
	pp, it, release, err := payProtocolOrder(c, cfg, l, d, "--reopen", "say why the order is settled after all: who checked the payment with Pay Protocol, the reference", "is paid")
	if err != nil {
		return err
	}
	defer release()
	proof := ""
	if it.State != pipeline.ItemHeld || !strings.HasPrefix(it.Reason, payprotocol.HeldReopened) {
		// Checked before Pay Protocol is asked (ReopenRejected checks
		// again, in its transaction).
		if it.Channel != payprotocol.Channel || it.State != pipeline.ItemRejected ||
			!slices.ContainsFunc(payprotocol.RejectedReasons, func(r string) bool { return strings.HasPrefix(it.Reason, r) }) ||
			strings.HasPrefix(it.Reason, pipeline.RejectedSellerHold) {
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s is a %s order, %s (%s): only a Pay Protocol order rejected for its failed payment is reopened",
				orderNo, it.Channel, it.State, cmp.Or(it.Reason, "no reason recorded"))
		}
		p, err := pp.client.PaymentDetail(ctx, it.TransactionID, "")
		if err != nil {
			return fmt.Errorf("order %s: Pay Protocol's payment detail of %s: %w (nothing recorded)", orderNo, it.TransactionID, err)
		}
		if p.Status != payprotocol.PaymentPaid {
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: Pay Protocol answers its payment %s %s now, not paid: it stays rejected; nothing recorded",
				orderNo, it.TransactionID, p.Status)
		}
		order := pipeline.Money{Minor: it.Gross, Currency: it.Currency}
		quote, err := p.Quote()
		if err != nil || quote != order {
			paid := fmt.Sprint(quote)
			if err != nil {
				paid = err.Error()
			}
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: Pay Protocol answers its payment %s paid, but %s, the order is %s: settle would not verify it; settle it with Pay Protocol and the platform; nothing recorded",
				orderNo, it.TransactionID, paid, order)
		}
		proof = fmt.Sprintf("Pay Protocol answered payment %s paid, %s, at %s", it.TransactionID, quote, cfg.clock().UTC().Format(time.RFC3339))
	}
	it, before, err := l.ReopenRejected(ctx, d, payprotocol.Channel, orderNo, payprotocol.RejectedReasons, payprotocol.HeldReopened, proof, c.String("note"))
	if err != nil {
		return err
	}
	when := "is held again"
	if before {
		when = "was reopened before"
	}
	fmt.Fprintf(cfg.stdout, "order %s (Pay Protocol payment %s) %s: %s\n", orderNo, it.TransactionID, when, it.Reason)
	fmt.Fprintf(cfg.stdout, "run the date again (settle run --date %s): it verifies the payment and settles the order once, in a further trade file of the date; the seller's revenue share pays it (the date's, or the seller's next one if the date's went out already)%s\n", d, pastMemoryHint(d, cfg.clock()))
	// A reprice left the order alone, rejected (never paid): the run pays
	// it at the split it was recorded with, under the rules the reprice
	// replaced. The same reprice again, once it is paid, records its
	// difference alone.
	ps, err := l.RepricesOf(ctx, d, false)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		last := ps[len(ps)-1]
		fmt.Fprintf(cfg.stdout, "%s was repriced (settle reprice, last under %s, rules %s), this order left alone while rejected: the run pays it at the split it was recorded with; once it is paid, settle reprice --date %s --rules %s adjusts it\n",
			d, last.Name, last.RulesHash, d, last.Name)
	}
	return nil
}

// sendTradeFileAgain returns the held orders of a trade file Infinia
// refused (and with --refused-rows the rows it refused) to the date's
// orders in no trade file (ledger.SendAgain), under the date's lock, so
// that no run of it works meanwhile: the next run of the date builds them
// into a further trade file and uploads it.
func sendTradeFileAgain(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	release, err := l.LockDate(c.Context, d)
	if err != nil {
		return err
	}
	defer release()
	ask := ledger.SendAgainRequest{Name: c.String("trade-file"), Note: c.String("note"), RefusedRows: c.Bool("refused-rows")}
	f, ok, err := l.TradeFileNamed(c.Context, d, ask.Name)
	if err != nil {
		return err
	}
	if ok && f.Status != infiniapay.StatusSuccess && f.Status != infiniapay.StatusFailed && strings.TrimSpace(ask.Note) != "" {
		// Not decided by Infinia: sent again only once Infinia lost it,
		// as the upload stage holds it (Client.LostFile asks Infinia now).
		if c.String(flagInfiniaURL) == "" {
			return pipeline.Errorf(pipeline.KindUsage, "--"+flagInfiniaURL, "required with --trade-file for a file Infinia has not decided (%s, last status %s): settle asks Infinia that it does not know it (give the --infinia-* flags of the run)", f.Name, f.Status)
		}
		inf, err := cfg.infiniaFromFlags(c)
		if err != nil {
			return err
		}
		up, found, err := l.LatestEffect(c.Context, infiniapay.KindUpload, infiniapay.UploadSubject(d, f.SellerID, f.Currency, f.Attempt))
		if err != nil {
			return err
		}
		if found {
			if err := sameAccount(c.Context, l, up.RunID, up.Kind, inf.account, "trade file "+f.Name); err != nil {
				return err
			}
		}
		if ask.Lost, err = inf.client.LostFile(c.Context, f, up, found, cfg.clock(), c.Duration(flagLostAfter)); err != nil {
			return err
		}
	}
	_, err = sendAgain(c, cfg, l, d, ask)
	return err
}

// sendRefusedFilesAgain is sendTradeFileAgain for every trade file of the
// date Infinia refused that no person sent again (with --refused-rows,
// and the refused rows of those sent again without them), under one lock: after a
// layout mistake every file of a date is refused, and a person sent them
// again one name at a time (found by an on-call walk of the runbook). A
// file with nothing to send again is said and passed; any other error
// stops it, what was sent again staying so (a second call goes on from
// there).
func sendRefusedFilesAgain(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "say why the files' orders can go out again: who confirmed with Infinia that it took none of them, the reference, what was fixed")
	}
	release, err := l.LockDate(c.Context, d)
	if err != nil {
		return err
	}
	defer release()
	runs, err := l.RunsOn(c.Context, d)
	if err != nil {
		return err
	}
	var files []pipeline.TradeFile
	for _, r := range runs {
		fs, err := l.RefusedTradeFiles(c.Context, r.ID, math.MaxInt32)
		if err != nil {
			return err
		}
		files = append(files, fs...)
		if c.Bool("refused-rows") {
			// A file a person sent again by name, before the cause of
			// its refused rows was fixed: its refused rows go too (they
			// were passed over, and stayed rejected).
			if fs, err = l.RefusedRowsLeftFiles(c.Context, r.ID); err != nil {
				return err
			}
			files = append(files, fs...)
		}
	}
	if len(files) == 0 {
		return pipeline.Errorf(pipeline.KindUsage, "--all-refused", "%s has no trade file Infinia refused that is not sent again already (settle status --date %s)", d, d)
	}
	var sent, nothing int
	var orders int64
	for _, f := range files {
		s, err := sendAgain(c, cfg, l, d, ledger.SendAgainRequest{Name: f.Name, Note: c.String("note"), RefusedRows: c.Bool("refused-rows")})
		if pipeline.KindOf(err) == pipeline.KindUsage {
			fmt.Fprintf(cfg.stdout, "%v\n", err)
			nothing++
			continue
		}
		if err != nil {
			return fmt.Errorf("after %d of %d refused trade files sent again: %w", sent, len(files), err)
		}
		sent++
		orders += s.Orders
	}
	fmt.Fprintf(cfg.stdout, "%d of %d refused trade files of %s sent again (%d orders); %d with nothing to send again\n", sent, len(files), d, orders, nothing)
	return nil
}

// sendAgain sends one trade file's orders again (ledger.SendAgain) and
// says what it did.
func sendAgain(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date, ask ledger.SendAgainRequest) (ledger.SentAgain, error) {
	s, err := l.SendAgain(c.Context, d, ask)
	if err != nil {
		return s, err
	}
	if s.Before {
		fmt.Fprintf(cfg.stdout, "trade file %s (requestNo %s) was sent again before, at %s by %s: %s\nnothing moved now\n",
			s.File.Name, s.File.RequestNo, s.Resolution.ResolvedAt.UTC().Format(time.RFC3339), s.Resolution.Who(), s.Resolution.Note)
		if s.RefusedLeft > 0 {
			fmt.Fprintf(cfg.stdout, "%d of its rows Infinia refused are still rejected: --refused-rows sends them too, once their cause is fixed\n", s.RefusedLeft)
		}
		return s, nil
	}
	how := "refused by Infinia: " + cmp.Or(s.File.Reason, "no reason recorded")
	if ask.Lost != "" {
		how = "given up: " + ask.Lost
	}
	fmt.Fprintf(cfg.stdout, "trade file %s (requestNo %s, %s): %d orders of seller %s in %s go out again\n",
		s.File.Name, s.File.RequestNo, how, s.Orders, s.File.SellerID, s.File.Currency)
	fmt.Fprintf(cfg.stdout, "the next run of %s uploads them in a further trade file; the seller's revenue share pays them (the date's, or the seller's next one if the date's went out already)%s\n", d, pastMemoryHint(d, cfg.clock()))
	return s, nil
}

// resolvePastMemory records what a person found in Infinia's statements
// about a revenue share held past the memory of Infinia's status query
// (infiniapay.RevenueShareSender.Query, pipeline.ErrPastMemory): under the
// date's lock, so that no run of it works meanwhile, and only once
// Infinia's status query still does not know its requestNo, planned
// longer ago than --infinia-query-memory (asked as a run asks), or
// answered by Infinia before (its reference recorded: every run holds
// it, pipeline.ApplyEffect). --paid:
// the share succeeds, and the next run applies it as a paid share (the
// seller's items and carried balance it netted marked paid), sending
// nothing; --not-paid: it fails, and the next run pays the seller's
// balance under the next attempt's requestNo. Nothing is sent here. A
// share resolved the same way before is said and left as it is. Infinia's
// available share of the seller must agree (pastMemoryAvailable: a share
// Infinia paid took from it), else the word is refused; beyond that the
// statement is the person's word, and the output says what a wrong word
// costs (--not-paid of a share Infinia paid: the seller paid twice,
// unless the next run finds Infinia's available share of the seller
// short; --paid of one it did not: the seller not paid for it). A WeChat
// Pay subject is resolveWeChatPastMemory's.
func resolvePastMemory(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, subject, paid := c.Context, c.String("subject"), c.Bool("paid")
	if _, ok := wechatpay.OrderOfSubject(subject); ok {
		return resolveWeChatPastMemory(c, cfg, l, d)
	}
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "say what Infinia's statement shows: who checked it, the statement, the reference")
	}
	inf, err := cfg.infiniaFromFlags(c)
	if err != nil {
		return err
	}
	release, err := l.LockDate(ctx, d)
	if err != nil {
		return err
	}
	defer release()
	e, ok, err := l.LatestEffect(ctx, infiniapay.KindRevenueShare, subject)
	if err != nil {
		return err
	}
	seller, serr := infiniapay.SubjectSeller(e.Subject, e.Currency)
	if !ok || serr != nil || infiniapay.RevenueShareSubject(d, seller, e.Currency) != subject {
		// One of another date is refused before Infinia is asked: the
		// lock held is this date's.
		return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: no revenue share of %s has this subject (the held line and payouts.csv give it; only an Infinia revenue share is resolved with --paid or --not-paid)", subject, d)
	}
	proof, avail := "", ""
	if e.State == pipeline.EffectSent || e.State == pipeline.EffectUnknown {
		// Checked before anything is recorded (a final or planned one is
		// refused, or said as resolved before, by ResolvePastMemory).
		if inf == nil {
			return pipeline.Errorf(pipeline.KindUsage, "--"+flagInfiniaURL, "required with --paid and --not-paid: settle asks Infinia that it still does not know requestNo %s", e.Key)
		}
		if err := sameAccount(ctx, l, e.RunID, e.Kind, inf.account, effectNamed(e)); err != nil {
			return err
		}
		out, err := infiniapay.NewRevenueShareSender(inf.client, l, nil, inf.lostAfter, inf.memory).Query(ctx, e)
		switch {
		case errors.Is(err, pipeline.ErrPastMemory):
			proof = fmt.Sprintf("Infinia's status query did not know requestNo %s at %s, planned %s before, past the %s it is taken to remember",
				e.Key, cfg.clock().UTC().Format(time.RFC3339), pipeline.RoundDays(cfg.clock().Sub(e.Planned)), pipeline.RoundDays(inf.memory))
		case err != nil && pipeline.SubjectOnly(err):
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: Infinia refuses to answer about requestNo %s (%v): settle cannot check that it still does not know it; nothing recorded", subject, e.Key, err)
		case err != nil:
			return fmt.Errorf("revenue share %s: Infinia's status of requestNo %s: %w (nothing recorded)", subject, e.Key, err)
		case out.Status == pipeline.OutcomeNotFound && e.ProviderRef != "":
			// Infinia answered it before (its reference) and does not
			// know it now, within its memory too: every run holds it for a
			// person (pipeline.ApplyEffect), never sent again nor failed,
			// as one past the memory. Refused here as "never arrived, the
			// next run sends it again", it was held until it aged past
			// --infinia-query-memory (30 days) with no way out.
			proof = fmt.Sprintf("Infinia's status query did not know requestNo %s at %s, which Infinia answered before (reference %s)",
				e.Key, cfg.clock().UTC().Format(time.RFC3339), e.ProviderRef)
		case out.Status == pipeline.OutcomeNotFound:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: Infinia does not know requestNo %s, planned %s ago, within the %s its status query remembers: it never arrived, and the date's next run sends it again (or fails it); nothing recorded",
				subject, e.Key, pipeline.RoundDays(cfg.clock().Sub(e.Planned)), pipeline.RoundDays(inf.memory))
		default:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: Infinia knows requestNo %s (%s): the date's next run records its answer; nothing recorded",
				subject, e.Key, cmp.Or(out.Reason, outcomeWord(out.Status)))
		}
		if avail, err = pastMemoryAvailable(c, inf, l, e, seller, paid); err != nil {
			return err
		}
		proof += "; " + avail
	}
	e, r, before, err := l.ResolvePastMemory(ctx, d, subject, e.Key, paid, proof, c.String("note"))
	if err != nil {
		return err
	}
	when := "is resolved"
	if before {
		when = "was resolved before"
	}
	money := pipeline.Money{Minor: e.Amount, Currency: e.Currency}
	fmt.Fprintf(cfg.stdout, "revenue share %s (requestNo %s, %s) %s at %s by %s: %s\n", e.Subject, e.Key, money, when, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	checked := "Infinia's available share of the seller, asked when it was resolved,"
	if avail != "" {
		fmt.Fprintf(cfg.stdout, "%s\n", avail)
		checked = "Infinia's available share of the seller"
	}
	if paid {
		fmt.Fprintf(cfg.stdout, "it is paid (succeeded): the next run of %s sends nothing for it, and marks what it paid (the seller's items and carried balance) paid by it\n", d)
		fmt.Fprintf(cfg.stdout, "settle cannot prove this at Infinia (its status query no longer knows requestNo %s; %s agrees, not more): it rests on the statement the note names; had Infinia not paid it, seller %s is not paid these %s\n",
			e.Key, checked, seller, money)
		return nil
	}
	// Infinia's available share refuses a word it contradicts; one it
	// cannot tell (other shares of the seller in flight) the statement
	// alone decides.
	fmt.Fprintf(cfg.stdout, "settle cannot prove this at Infinia (its status query no longer knows requestNo %s; %s agrees, not more): it rests on the statement the note names, which must show no payment of requestNo %s from %s on; had Infinia paid it, the next run pays seller %s these %s a second time, unless Infinia's available share of the seller is short of them then (it holds the seller for a person)\n",
		e.Key, checked, e.Key, e.Planned.UTC().Format(time.DateOnly), seller, money)
	if e.Attempt >= infiniapay.DefaultMaxAttempts {
		fmt.Fprintf(cfg.stdout, "it is failed: requestNo %s is never sent again; it was the last of %d attempts, so the next run of %s holds the seller's balance for a person (exit 4)\n",
			e.Key, e.Attempt, d)
		return nil
	}
	fmt.Fprintf(cfg.stdout, "it is failed: requestNo %s is never sent again; the next run of %s pays the seller's balance under a new requestNo (%s, attempt %d of %d)\n",
		e.Key, d, infiniapay.RevenueShareRequestNo(d, seller, e.Currency, e.Attempt+1), e.Attempt+1, infiniapay.DefaultMaxAttempts)
	return nil
}

// pastMemoryAvailable weighs --paid or --not-paid of revenue share e
// (sent or unknown, its requestNo past Infinia's memory) against
// Infinia's available share of its seller in its currency, which a
// share Infinia paid took from: the ledger expects it at want, the
// seller's accepted trade files less its succeeded shares (over all
// dates), less what Infinia paid of the shares in flight - e's amount
// and others'. Paid, e left at most want - e.Amount; not paid, at least
// want - others. A word the figure contradicts is refused (KindUsage),
// nothing recorded; one it cannot tell (others in flight as large as e)
// passes, the statement deciding. It returns what Infinia showed, for
// the proof.
func pastMemoryAvailable(c *cli.Context, inf *infiniaSetup, l *ledger.Ledger, e pipeline.Effect, seller string, paid bool) (string, error) {
	ctx := c.Context
	var x pipeline.ExpectedShare
	found := false
	err := l.EachExpectedShare(ctx, e.RunID, func(s pipeline.ExpectedShare) error {
		if s.SellerID == seller && s.Currency == e.Currency {
			x, found = s, true
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if !found || x.ProviderSellerID == "" {
		return "", pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: seller %s has no Infinia seller id recorded: settle cannot ask Infinia its available share; nothing recorded", e.Subject, seller)
	}
	avail, err := inf.client.AvailableShare(ctx, pipeline.QueryRequestNo("RSA"), x.ProviderSellerID, e.Currency)
	if err != nil {
		return "", fmt.Errorf("revenue share %s: Infinia's available share of seller %s (Infinia id %s) in %s: %w (nothing recorded)", e.Subject, seller, x.ProviderSellerID, e.Currency, err)
	}
	money := func(m int64) pipeline.Money { return pipeline.Money{Minor: m, Currency: e.Currency} }
	want, others := x.Uploaded-x.Paid, x.InFlight-e.Amount
	shown := fmt.Sprintf("Infinia showed %s available to seller %s (Infinia id %s), the ledger %s before what the %s in flight took (%s of it this share's)",
		money(avail), seller, x.ProviderSellerID, money(want), money(x.InFlight), money(e.Amount))
	switch {
	case paid && avail > want-e.Amount:
		return "", pipeline.Errorf(pipeline.KindUsage, "--paid", "%s: %s: paid, requestNo %s would have left at most %s; nothing recorded. If Infinia's statements show it never paid, --not-paid",
			e.Subject, shown, e.Key, money(want-e.Amount))
	case !paid && avail < want-max(others, 0):
		return "", pipeline.Errorf(pipeline.KindUsage, "--not-paid", "%s: %s: never paid, requestNo %s would have left at least %s - Infinia took it, or Infinia's figure and the ledger's differ (the reconciliation says); nothing recorded. If Infinia's statements show it paid, --paid",
			e.Subject, shown, e.Key, money(want-max(others, 0)))
	}
	return shown, nil
}

// sameAccount refuses (exit 2) to ask a provider about what run runID
// sent (what: a request, or a held order) under another account (ours, as
// the settings give it) than the one the run recorded for effect kind
// (Ledger.RunAccount), as a run of the date is refused (ledger.OpenRun): a
// requestNo or out_order_no is known only to the account it was sent to,
// and the other account - a second merchant's settings, a sandbox's -
// answers "not found" and shows none of the seller's funds, which resolve
// weighed as the date's own account's word (a revenue share that never
// arrived recorded paid, its seller never paid). A run that recorded no
// account for kind is not judged.
func sameAccount(ctx context.Context, l *ledger.Ledger, runID int64, kind, ours, what string) error {
	theirs, err := l.RunAccount(ctx, runID, kind)
	if err != nil || theirs == "" || theirs == ours {
		return err
	}
	return pipeline.Errorf(pipeline.KindUsage, "resolve", "%s: the run of its date (run %d) sent its %s requests from %s, and this asks %s: an idempotency key is known only to the account it was sent to, and another account's \"not found\" and figures say nothing of it; nothing asked, nothing recorded: give the settings the date sent from",
		what, runID, kind, theirs, ours)
}

// effectNamed names request e for sameAccount.
func effectNamed(e pipeline.Effect) string {
	return fmt.Sprintf("%s %s (%s)", e.Kind, e.Subject, e.Key)
}

// outcomeWord names an outcome's status for a person.
func outcomeWord(s pipeline.OutcomeStatus) string {
	switch s {
	case pipeline.OutcomeSucceeded:
		return "succeeded"
	case pipeline.OutcomeFailed:
		return "failed"
	case pipeline.OutcomeNotFound:
		return "not found"
	}
	return "pending"
}

// resolveWeChatPastMemory records what a person found in WeChat Pay's
// records about the WeChat Pay distribution or unfreeze of subject
// (wechatpay.Subject: its order's transaction) held past the memory of
// WeChat Pay's order query (wechatpay.DistributionSender.Query,
// pipeline.ErrPastMemory): under the date's lock, and only once the
// order query still does not know its out_order_no, planned longer ago
// than --wechat-query-memory (asked as a run asks) or answered by WeChat
// Pay before (its order id recorded: every run holds it,
// pipeline.ApplyEffect), and WeChat Pay's
// frozen funds agree: a distribution (sent with unfreeze_unsplit) or an
// unfreeze that was applied left nothing of the transaction frozen, one
// that never was left it all. --paid: WeChat Pay holds nothing of the
// transaction any more; the request succeeds, and the next run settles
// the item (paid by it), sending nothing. --not-paid: WeChat Pay still
// holds some of it; the request fails, and the next run sends the
// transaction's next attempt under a new out_order_no once WeChat Pay
// holds the order's amount (the stage's check; less is held for a
// person). A request WeChat Pay's frozen funds contradict is refused,
// nothing recorded: they bound what can move, whatever a statement is
// read to say.
func resolveWeChatPastMemory(c *cli.Context, cfg *config, l *ledger.Ledger, d pipeline.Date) error {
	ctx, subject, paid := c.Context, c.String("subject"), c.Bool("paid")
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "say what WeChat Pay's records show: who checked them, the bill or statement, the reference")
	}
	w, err := cfg.weChatFromFlags(c)
	if err != nil {
		return err
	}
	release, err := l.LockDate(ctx, d)
	if err != nil {
		return err
	}
	defer release()
	orderNo, _ := wechatpay.OrderOfSubject(subject)
	var e pipeline.Effect
	found := false
	if wechatpay.Subject(d, orderNo) == subject {
		if e, found, err = latestWeChatEffect(ctx, l, subject); err != nil {
			return err
		}
	}
	if !found {
		return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: no WeChat Pay distribution or unfreeze of %s has this subject (the held line and payouts.csv give it)", subject, d)
	}
	proof := ""
	if e.State == pipeline.EffectSent || e.State == pipeline.EffectUnknown {
		// Checked before anything is recorded (a final or planned one is
		// refused, or said as resolved before, by ResolvePastMemory).
		if w == nil {
			return pipeline.Errorf(pipeline.KindUsage, "--"+flagWXURL, "required with --paid and --not-paid: settle asks WeChat Pay that it still does not know out_order_no %s, and what it holds of the transaction", e.Key)
		}
		if err := sameAccount(ctx, l, e.RunID, e.Kind, w.account, effectNamed(e)); err != nil {
			return err
		}
		it, err := l.Item(ctx, d, orderNo)
		if err != nil {
			return err
		}
		sub, err := l.AccountOf(ctx, it.RunID, wechatpay.SellerAccount, it.SellerID)
		if err != nil {
			return err
		}
		if sub == "" {
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: its seller %s has no WeChat Pay sub-merchant recorded with its run", subject, it.SellerID)
		}
		out, err := askWeChat(ctx, w, e, sub, it.TransactionID)
		forgot := fmt.Sprintf("WeChat Pay's order query did not know out_order_no %s at %s, planned %s before, past the %s it is taken to remember",
			e.Key, cfg.clock().UTC().Format(time.RFC3339), pipeline.RoundDays(cfg.clock().Sub(e.Planned)), pipeline.RoundDays(w.memory))
		switch {
		case errors.Is(err, pipeline.ErrPastMemory):
		case err == nil && out.Status == pipeline.OutcomeNotFound && e.ProviderRef != "":
			// WeChat Pay answered it before (its order id) and does not
			// know it now, within its memory too: held by every run
			// (pipeline.ApplyEffect), as one past the memory.
			forgot = fmt.Sprintf("WeChat Pay's order query did not know out_order_no %s at %s, which WeChat Pay answered before (order %s)",
				e.Key, cfg.clock().UTC().Format(time.RFC3339), e.ProviderRef)
		case err != nil && pipeline.SubjectOnly(err):
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: WeChat Pay refuses to answer about out_order_no %s (%v): settle cannot check that it still does not know it; nothing recorded", subject, e.Key, err)
		case err != nil:
			return fmt.Errorf("%s %s: WeChat Pay's order of out_order_no %s: %w (nothing recorded)", e.Kind, subject, e.Key, err)
		case out.Status == pipeline.OutcomeNotFound:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: WeChat Pay does not know out_order_no %s, planned %s ago, within the %s its order query remembers: it never arrived, and the date's next run sends it again (or fails it); nothing recorded",
				subject, e.Key, pipeline.RoundDays(cfg.clock().Sub(e.Planned)), pipeline.RoundDays(w.memory))
		default:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: WeChat Pay knows out_order_no %s (%s): the date's next run records its answer; nothing recorded",
				subject, e.Key, cmp.Or(out.Reason, outcomeWord(out.Status)))
		}
		left, err := w.client.RemainingAmount(ctx, sub, it.TransactionID)
		var we *wechatpay.Error
		if errors.As(err, &we) && we.Refused() {
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: WeChat Pay refuses to say what it holds of transaction %s at sub-merchant %s (%v): settle cannot check it; nothing recorded",
				subject, it.TransactionID, sub, err)
		}
		if err != nil {
			return fmt.Errorf("%s %s: what WeChat Pay holds of transaction %s at sub-merchant %s: %w (nothing recorded)", e.Kind, subject, it.TransactionID, sub, err)
		}
		held := pipeline.Money{Minor: left.Amount, Currency: left.Currency}
		switch {
		case paid && left.Amount != 0:
			return pipeline.Errorf(pipeline.KindUsage, "--paid", "%s: WeChat Pay still holds %s of transaction %s at sub-merchant %s: %s %s did not settle it (applied, it leaves nothing frozen); nothing recorded. If WeChat Pay's records show it never applied, --not-paid",
				subject, held, it.TransactionID, sub, e.Kind, e.Key)
		case !paid && left.Amount == 0:
			return pipeline.Errorf(pipeline.KindUsage, "--not-paid", "%s: WeChat Pay holds nothing of transaction %s at sub-merchant %s any more: it was distributed or released, by %s %s or by hand; nothing recorded. If WeChat Pay's records show %s applied, --paid; if a person settled it by hand, settle resolve --order %s (the request is recorded not applied)",
				subject, it.TransactionID, sub, e.Kind, e.Key, e.Key, orderNo)
		}
		proof = fmt.Sprintf("%s; it held %s of transaction %s at sub-merchant %s", forgot, held, it.TransactionID, sub)
	}
	e, r, before, err := l.ResolvePastMemory(ctx, d, subject, e.Key, paid, proof, c.String("note"))
	if err != nil {
		return err
	}
	when := "is resolved"
	if before {
		when = "was resolved before"
	}
	moves := pipeline.Money{Minor: e.Amount, Currency: e.Currency}.String() // a distribution's commission
	if e.Kind == wechatpay.KindUnfreeze {
		// An unfreeze's effect carries no amount (no commission): it
		// releases what WeChat Pay holds to the seller. "0.00 CNY" read
		// as a request that moved nothing.
		moves = "no commission: what WeChat Pay held of the transaction released to the seller"
	}
	fmt.Fprintf(cfg.stdout, "%s %s (out_order_no %s, %s) %s at %s by %s: %s\n", e.Kind, e.Subject, e.Key, moves, when, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	if paid {
		fmt.Fprintf(cfg.stdout, "it is applied (succeeded): the next run of %s sends nothing for it, and settles order %s paid by it once WeChat Pay holds nothing of its transaction\n", d, orderNo)
		return nil
	}
	fmt.Fprintf(cfg.stdout, "it is failed: out_order_no %s is never sent again; the next run of %s settles order %s under a new out_order_no (%s) while WeChat Pay holds the order's amount\n",
		e.Key, d, orderNo, wechatpay.OutOrderNo(d, orderNo, e.Attempt+1))
	return nil
}
