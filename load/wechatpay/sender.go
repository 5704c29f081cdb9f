package wechatpay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// The pipeline.Effect kinds DistributionSender handles.
const (
	KindDistribution = "distribution"
	KindUnfreeze     = "unfreeze"
)

// DefaultUnfreezeDescription is the description DistributionSender sends
// with an unfreeze.
const DefaultUnfreezeDescription = "Unfreeze the remaining funds"

// DistributionSender performs distribution and unfreeze effects through a
// Client, with Effect.Key as the out_order_no: Send is Distribute (kind
// "distribution") or Unfreeze (kind "unfreeze"), Query is QueryOrder.
// It implements pipeline.EffectSender.
//
// PROCESSING is OutcomePending; FINISHED with every receiver SUCCESS is
// OutcomeSucceeded; FINISHED with a receiver CLOSED is OutcomeFailed with
// WeChat Pay's fail_reason. Receivers of the same request that succeeded
// were paid all the same, and the reason names them: plan a retry for the
// closed receivers only (one receiver per request avoids the question).
type DistributionSender struct {
	Client *Client
	// Distribution returns what an effect moves: the sub-merchant, the
	// transaction and, for a distribution, the receivers, whose amounts
	// must add up to Effect.Amount (minor units). OutOrderNo is set from
	// Effect.Key. Required.
	Distribution func(pipeline.Effect) (Distribution, error)
	// KnownAfter is how long WeChat Pay may take to know a request it
	// applied (default DefaultKnownAfter): a distribution or unfreeze
	// sent again under its out_order_no after an unknown outcome that
	// WeChat Pay refuses, and whose out_order_no its query does not know,
	// is failed only once it has not known it for this long (the rule
	// is pipeline.RefusedRepeat's).
	KnownAfter time.Duration
	// Memory is how long WeChat Pay's order query is taken to remember an
	// out_order_no (default DefaultMemory): a distribution or unfreeze
	// planned longer ago that the query does not know is neither sent
	// again under its out_order_no (a WeChat Pay that forgot a request it
	// applied may take the same out_order_no as new) nor failed (it would
	// go again under a new one): Query answers an error wrapping
	// pipeline.ErrPastMemory, which holds its transaction for a person.
	// It must be longer than KnownAfter.
	Memory time.Duration
}

var _ pipeline.EffectSender = DistributionSender{}

// Send asks WeChat Pay to distribute or unfreeze. An error means the
// outcome is unknown (ErrUnknownOutcome, retries exhausted, cancelled, or
// the effect could not be turned into a request). A definite refusal is
// confirmed by a query before it is reported as OutcomeFailed, so that a
// refusal of a repeated out_order_no can never make us pay twice.
//
// What WeChat Pay certainly did not take moved no money, and says so
// (pipeline.NotTaken, Outcome.NotTaken: the run's new money movements do
// not count it): an effect that could not be turned into a request, a
// call refused before it was sent or whose connection was never made, 429
// FREQUENCY_LIMITED until the retries ran out, a refusal the query
// confirms WeChat Pay holds nothing under, and a refusal of our signature
// (401 SIGN_ERROR: WeChat Pay executes no request whose signature does
// not verify; a usage error, which stops the engine's sends). A call an
// attempt of which may have been applied (ErrUnknownOutcome) is not
// marked, nor one whose answer we cannot verify.
//
// A refusal of a request sent again under its out_order_no (Effect.Sends
// > 1: an earlier send's outcome was unknown) that the query does not
// know is not final: it waits for the first send to show (the rule of a
// refused repeat, pipeline.RefusedRepeat), never sent a third time,
// failed once WeChat Pay has not known it for KnownAfter.
func (s DistributionSender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	out, _, err := s.SendOrder(ctx, e)
	return out, err
}

// SendOrder is Send, with the order WeChat Pay answered (zero when it
// answered none).
func (s DistributionSender) SendOrder(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, Order, error) {
	d, err := s.distribution(e)
	if err != nil {
		return pipeline.Outcome{}, Order{}, pipeline.NotTaken(err) // nothing sent
	}
	var o Order
	if e.Kind == KindDistribution {
		o, err = s.Client.Distribute(ctx, d)
	} else {
		o, err = s.Client.Unfreeze(ctx, Unfreeze{SubMchID: d.SubMchID, TransactionID: d.TransactionID, OutOrderNo: e.Key, Description: DefaultUnfreezeDescription})
	}
	if err == nil {
		out, err := judge(e, d, o)
		return out, o, err
	}
	var we *Error
	if errors.As(err, &we) && we.notTaken() && pipeline.KindOf(err) != pipeline.KindUsage {
		// Never sent, or "retry later" to the end: unknown to the engine
		// as any send error (asked by its out_order_no), but it moved
		// nothing.
		return pipeline.Outcome{}, Order{}, pipeline.NotTaken(err)
	}
	if we != nil && we.signRefused() {
		// WeChat Pay refused who we are (401 SIGN_ERROR: our merchant
		// certificate changed at WeChat Pay under the run), and executed
		// nothing: no money moved. Not a refusal of the request, so never
		// failed for it (it would go again under a new out_order_no):
		// unknown as any send error, asked about by its out_order_no and
		// sent again under it once WeChat Pay takes our key, and marked
		// not taken. Its error keeps its kind (usage): the engine sends
		// nothing more. No query confirms it: WeChat Pay would refuse it
		// too. It was an ordinary unknown send, counted as a money
		// movement.
		return pipeline.Outcome{}, Order{}, pipeline.NotTaken(err)
	}
	if we == nil || !we.Refused() {
		return pipeline.Outcome{}, Order{}, err
	}
	// WeChat Pay refused. Make sure it holds nothing under this key.
	found, qerr := s.Client.QueryOrder(ctx, d.SubMchID, d.TransactionID, e.Key)
	switch {
	case qerr == nil:
		out, err := judge(e, d, found)
		return out, found, err
	case errors.Is(qerr, ErrNotFound) && e.Sends > 1:
		// Sent again under its out_order_no after an unknown outcome: the
		// refusal may be of the repeat (NOT_ENOUGH: the first send took
		// the funds) while the query does not know the first yet.
		return s.refusedAgain(e, strings.TrimSpace(we.Code+" "+we.Message)), Order{}, nil
	case errors.Is(qerr, ErrNotFound):
		// A refusal of the request itself that WeChat Pay holds nothing
		// under: not taken, no money moved.
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: strings.TrimSpace(we.Code + " " + we.Message), NotTaken: true}, Order{}, nil
	}
	return pipeline.Outcome{}, Order{}, errors.Join(err, qerr)
}

// DefaultKnownAfter is DistributionSender.KnownAfter's default.
const DefaultKnownAfter = pipeline.DefaultKnownAfter

// refused is the rule for a refused repeat (pipeline.RefusedRepeat) with
// WeChat Pay's clock and KnownAfter. Its mark names the out_order_no, as
// it did when the rule was this package's: " (refused sent again,
// out_order_no unknown since <time>)".
func (s DistributionSender) refused() pipeline.RefusedRepeat {
	return pipeline.RefusedRepeat{Provider: "WeChat Pay", Key: "out_order_no", KnownAfter: s.KnownAfter, Now: s.Client.cfg.Now}
}

// DefaultMemory is DistributionSender.Memory's default: how long WeChat
// Pay's order query is assumed to remember an out_order_no. The Global
// API publishes no retention for it (its bills reach back a limited
// time); thirty days is well past a nightly run's resumes and
// KnownAfter.
const DefaultMemory = 30 * 24 * time.Hour

// refusedAgain is the outcome of e, sent again under its out_order_no
// after an unknown outcome, refused by WeChat Pay (refusal: its code and
// message) while its query does not know the out_order_no: the rule of a
// refused repeat (pipeline.RefusedRepeat.Refused), pending until WeChat
// Pay has not known it for KnownAfter, failed then (the first send never
// arrived). Failed at once, the distribution was recorded failed while
// the first send may have been applied, and went again under a new key.
func (s DistributionSender) refusedAgain(e pipeline.Effect, refusal string) pipeline.Outcome {
	return s.refused().Refused(e, fmt.Sprintf("WeChat Pay refused out_order_no %s sent again after an unknown outcome (%s) and does not know it", e.Key, refusal))
}

// Query asks WeChat Pay about e.Key: ErrNotFound is OutcomeNotFound,
// unless e was planned longer than Memory ago (an error wrapping
// pipeline.ErrPastMemory: its transaction held for a person) or is a
// refused repeat waiting for its first send
// (pipeline.RefusedRepeat.NotFound: pending, or failed after KnownAfter).
func (s DistributionSender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	out, _, err := s.QueryOrder(ctx, e)
	return out, err
}

// QueryOrder is Query, with the order WeChat Pay answered (zero when it
// answered none).
func (s DistributionSender) QueryOrder(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, Order, error) {
	d, err := s.distribution(e)
	if err != nil {
		return pipeline.Outcome{}, Order{}, err
	}
	o, err := s.Client.QueryOrder(ctx, d.SubMchID, d.TransactionID, e.Key)
	if errors.Is(err, ErrNotFound) {
		if perr := pipeline.PastMemory(e, s.Client.cfg.Now(), cmp.Or(s.Memory, DefaultMemory), "WeChat Pay"); perr != nil {
			return pipeline.Outcome{}, Order{}, perr // forgotten, perhaps: neither sent again nor failed
		}
		return s.refused().NotFound(e), Order{}, nil // a refused repeat is not sent a third time
	}
	if err != nil {
		return pipeline.Outcome{}, Order{}, err
	}
	out, err := judge(e, d, o)
	return out, o, err
}

func (s DistributionSender) distribution(e pipeline.Effect) (Distribution, error) {
	if e.Kind != KindDistribution && e.Kind != KindUnfreeze {
		return Distribution{}, fmt.Errorf("wechatpay: effect %s %s is not a %s or an %s", e.Kind, e.Key, KindDistribution, KindUnfreeze)
	}
	if !ValidOutOrderNo(e.Key) {
		return Distribution{}, fmt.Errorf("wechatpay: effect %s key %q: an out_order_no is 1 to %d characters of [0-9A-Za-z_-]", e.Kind, e.Key, MaxOutOrderNo)
	}
	if s.Distribution == nil {
		return Distribution{}, errors.New("wechatpay: DistributionSender.Distribution is not set")
	}
	d, err := s.Distribution(e)
	if err != nil {
		return Distribution{}, fmt.Errorf("wechatpay: effect %s %s: %w", e.Kind, e.Key, err)
	}
	d.OutOrderNo = e.Key
	if e.Kind == KindDistribution {
		total, err := d.Total()
		if err != nil || total != e.Amount {
			return Distribution{}, fmt.Errorf("wechatpay: effect %s %s: receivers add up to %d, the effect moves %d", e.Kind, e.Key, total, e.Amount)
		}
	}
	return d, nil
}

// judge is outcome of o, WeChat Pay's order about effect e sent as d,
// once every line of a distribution's order is one d asks for: a line to
// a receiver d does not name (the rest unfrozen to the sub-merchant
// aside) is not our request's - the commission paid to someone else, or
// another request's answer - and such an answer is an error (ErrAnswer),
// never an outcome. It was taken as the platform's commission collected.
// So is a line of an unfreeze to anyone but the sub-merchant itself (an
// unfreeze releases the rest to the sponsor, and names no receiver): it
// was taken as the seller's share released once WeChat Pay held nothing
// of the transaction, the item paid.
func judge(e pipeline.Effect, d Distribution, o Order) (pipeline.Outcome, error) {
	if e.Kind == KindUnfreeze {
		for i, r := range o.Receivers {
			if (r.Type != TypeMerchantID && r.Type != "") || r.Account != d.SubMchID {
				return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
					Err: fmt.Errorf("%w: WeChat Pay's unfreeze releases line %d to %s %q, not to sub-merchant %s: not the request we sent", ErrAnswer, i+1, clip(r.Type), clip(r.Account), d.SubMchID)}
			}
		}
	}
	if e.Kind == KindDistribution {
		for i, r := range o.Receivers {
			if r.Type == TypeMerchantID && r.Account == d.SubMchID {
				continue // the rest, unfrozen to the seller
			}
			if !slices.ContainsFunc(d.Receivers, func(s Share) bool { return s.Account == r.Account && (r.Type == "" || s.Type == r.Type) }) {
				return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
					Err: fmt.Errorf("%w: WeChat Pay's order pays receiver %d to %s %q, which the request does not name: not the request we sent", ErrAnswer, i+1, clip(r.Type), clip(r.Account))}
			}
		}
	}
	return outcome(e, d.SubMchID, o)
}

// outcome maps an Order of the sub-merchant subMchID to the pipeline's
// outcome. A line in another currency than the effect's (when WeChat Pay
// names it) is not our request's, whatever its amount: an error, never an
// outcome. A distribution is judged by its receivers' lines: WeChat Pay's
// answer to one sent with unfreeze_unsplit also lists the rest going back
// to the seller ("解冻给分账方": a MERCHANT_ID line to the sub-merchant
// itself, which is never a receiver of its own distribution), which is not
// what the effect moves. A distribution whose receivers add up to another
// amount than the effect's is not ours (a key reused with other
// parameters): that is an error, never an outcome; so are lines that add
// up past int64 (added as int64 they wrapped, and lines of 2^63-1,
// 2^63-1 and 302 were taken for an effect of 300), the rest's lines too.
func outcome(e pipeline.Effect, subMchID string, o Order) (pipeline.Outcome, error) {
	out := pipeline.Outcome{Status: pipeline.OutcomePending, Ref: o.OrderID}
	var total, rest int64
	var closed, paid []string
	pending := false
	for i, r := range o.Receivers {
		if r.Currency != "" && e.Currency != "" && r.Currency != e.Currency {
			// Every line WeChat Pay answers names its currency
			// (receivers[].currency, 分账币种), the receivers' and the
			// rest's alike: our request's are all in the effect's. The
			// amounts of a line in another were taken as ours (100 HKD
			// for 100 CNY collected, or released to the seller).
			return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
				Err: fmt.Errorf("%w: WeChat Pay's order moves receiver %d's line in %s (%s), the effect's are in %s: not the request we sent", ErrAnswer, i+1, clip(string(r.Currency)), money(r.Amount, r.Currency), e.Currency)}
		}
		var err error
		if e.Kind == KindDistribution && r.Type == TypeMerchantID && r.Account == subMchID {
			// The rest, unfrozen to the seller: not what the effect moves,
			// but what the stage reads as the share released (restOf,
			// releaseOf). Lines of it that add up past int64 wrapped there
			// (2^63-1, 2^63-1 and 2 released 0), and are no answer to use.
			if rest, err = pipeline.Add(rest, r.Amount); err != nil {
				return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
					Err: fmt.Errorf("%w: WeChat Pay's order releases more than int64 holds to the seller: an answer that cannot be used", ErrAnswer)}
			}
			continue
		}
		if total, err = pipeline.Add(total, r.Amount); err != nil {
			return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
				Err: fmt.Errorf("%w: WeChat Pay's order moves more than int64 holds: not the request we sent", ErrAnswer)}
		}
		switch r.Result {
		case ResultClosed:
			closed = append(closed, strings.TrimSpace(r.Account+" "+r.FailReason))
		case ResultSuccess:
			cur := r.Currency
			if cur == "" {
				cur = e.Currency // a line naming none is read in the request's, as its amount is
			}
			paid = append(paid, r.Account+" "+money(r.Amount, cur))
		default:
			pending = true
		}
	}
	// The lines must move what we asked: once there are any, and once the
	// order is FINISHED in any case - the published schema makes
	// receivers optional (wechatpay-go v0.2.20, services/profitsharing,
	// OrdersEntity.Receivers omitempty), and a FINISHED answer without the
	// platform's line says nothing of the commission (it was taken as
	// paid; found by a review).
	if e.Kind == KindDistribution && (len(o.Receivers) > 0 || o.State == StateFinished) && total != e.Amount {
		return pipeline.Outcome{}, &Error{API: APIQueryOrder, Key: e.Key, kind: failBadAnswer,
			Err: fmt.Errorf("%w: WeChat Pay's order moves %s, the effect %s: not the request we sent", ErrAnswer, money(total, e.Currency), money(e.Amount, e.Currency))}
	}
	switch {
	case o.State != StateFinished:
	case len(closed) > 0:
		out.Status, out.Reason = pipeline.OutcomeFailed, "CLOSED: "+strings.Join(closed, ", ")
		if len(paid) > 0 {
			out.Reason += "; paid all the same: " + strings.Join(paid, ", ")
		}
	case !pending:
		out.Status = pipeline.OutcomeSucceeded
	}
	return out, nil
}

// money writes minor units of cur with its decimals, as every reason
// does ("1.00 CNY", "100 JPY"); a currency settle does not know as the
// minor units they are. Written bare, the 100 fen a receiver was paid read
// as 100 yuan in the payout's reason, and a line of 900 HKD fen as 900 HKD.
func money(minor int64, cur pipeline.Currency) string {
	if cur.Valid() {
		return pipeline.Money{Minor: minor, Currency: cur}.String()
	}
	return fmt.Sprintf("%d minor units of %s", minor, clip(string(cur)))
}
