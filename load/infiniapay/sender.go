package infiniapay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// SubjectSeller returns the seller named by a revenue-share Effect.Subject,
// "RS/<YYYYMMDD>/<sellerID>/<currency>" (RevenueShareSubject),
// checking its shape and that its currency is cur.
func SubjectSeller(subject string, cur pipeline.Currency) (string, error) {
	parts := strings.Split(subject, "/")
	if len(parts) != 4 || parts[0] != "RS" || len(parts[1]) != 8 || parts[2] == "" {
		return "", fmt.Errorf("subject %q: want RS/<YYYYMMDD>/<sellerID>/<currency>", subject)
	}
	if parts[3] != string(cur) {
		return "", fmt.Errorf("subject %q: currency is not the effect's %s", subject, cur)
	}
	return parts[2], nil
}

// RevenueShareSender performs revenue-share effects (kind KindRevenueShare)
// through a Client: Send is RevenueShare with Effect.Key as the requestNo
// and Effect.Amount (minor units) in Effect.Currency; Query is
// RevenueShareStatus. It implements pipeline.EffectSender.
type RevenueShareSender struct {
	Client *Client
	// SellerID names the Infinia seller id an effect pays. Nil takes the
	// seller named in Effect.Subject (see SubjectSeller), which is right
	// only when the platform's seller ids are the sellers' Infinia ids;
	// otherwise map the subject's seller to its Infinia id here.
	SellerID func(context.Context, pipeline.Effect) (string, error)
	// Answers keeps Infinia's answers for the distribute stage's check of
	// those it adopts (StageConfig.Answers); nil: none kept.
	Answers *ShareAnswers
	// KnownAfter is how long Infinia may take to know a request it got
	// (0: pipeline.DefaultKnownAfter, 24h; the distribute stage sets the
	// upload stage's LostAfter): a request sent again under its requestNo
	// after an unknown outcome that Infinia refuses, and whose requestNo
	// it does not know, is failed only once it has not known it for this
	// long (see Send; the rule is pipeline.RefusedRepeat's).
	KnownAfter time.Duration
	// Memory is how long Infinia's status query is taken to remember a
	// requestNo (default DefaultMemory; Infinia publishes none): a
	// revenue share planned longer ago that the query does not know is
	// neither sent again under its requestNo (an Infinia that forgot a
	// share it paid may pay the same requestNo again) nor failed (its
	// balance would go out under a new requestNo): Query answers an error
	// wrapping pipeline.ErrPastMemory, which holds the seller's payout for
	// a person. It must be longer than KnownAfter.
	Memory time.Duration
}

// DefaultMemory is how long Infinia's status query is assumed to remember
// a requestNo when nothing says otherwise (RevenueShareSender.Memory):
// Infinia publishes no retention, so thirty days, well past a nightly
// run's resumes and KnownAfter, and short enough for any provider that
// keeps its records a few months.
const DefaultMemory = 30 * 24 * time.Hour

var _ pipeline.EffectSender = RevenueShareSender{}

// Prepare reads the Infinia seller id e pays (SellerID: the ledger's)
// before the engine records e as sent (pipeline.EffectPreparer), and
// returns the sender that pays e to it: a ledger that cannot be read
// (pipeline.ErrNotRead) leaves e unsent, not counted as sent once
// although nothing went out (found by a review).
func (s RevenueShareSender) Prepare(ctx context.Context, e pipeline.Effect) (pipeline.EffectSender, error) {
	seller, err := s.seller(ctx, e)
	if err != nil {
		return nil, err
	}
	lookup := s.SellerID
	s.SellerID = func(ctx context.Context, x pipeline.Effect) (string, error) {
		if x.Key == e.Key && x.Subject == e.Subject && x.Currency == e.Currency {
			return seller, nil
		}
		return RevenueShareSender{SellerID: lookup}.seller(ctx, x) // not the effect prepared: read as before
	}
	return s, nil
}

var _ pipeline.EffectPreparer = RevenueShareSender{}

// Send asks Infinia to pay the effect. PROCESSING is OutcomePending,
// SUCCESS OutcomeSucceeded, FAILED OutcomeFailed. An error means the outcome
// is unknown (ErrUnknownOutcome, retries exhausted, cancelled). A definite
// refusal (a non-transient code) is confirmed by a status query before it is
// reported as OutcomeFailed, so that a provider that refuses a repeated
// requestNo instead of replaying it can never make us pay twice.
//
// A refusal of a request sent again under its requestNo (Effect.Sends > 1:
// an earlier send had an unknown outcome) is not final even when the query
// does not know the requestNo: Infinia may refuse the repeat ("duplicate",
// or a balance the first send spent) while its status query does not know
// the first yet. Failed then, the payout's balance went to a new
// requestNo, and the first could still pay it (found by a review). It is
// pending instead, asked again by every run, and failed only once Infinia
// has not known the requestNo for KnownAfter since it refused it: by then
// the first send never arrived (the rule of a refused repeat,
// pipeline.RefusedRepeat, which this package gives Infinia's refusals
// and status query). So too a repeat answered with the status FAILED
// (failedAgain): it counts once the status query confirms it.
func (s RevenueShareSender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	seller, err := s.seller(ctx, e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	res, err := s.Client.RevenueShare(ctx, RevenueShareRequest{
		RequestNo: e.Key, SellerID: seller, Currency: e.Currency, Amount: e.Amount, Note: e.Subject,
	})
	if err == nil {
		if err := ours(APIRevenueShare, res, seller, e); err != nil {
			s.Answers.forget(e.Key)
			err.Err = unknown(err.Err) // not our request's answer: says nothing of the money
			return pipeline.Outcome{}, err
		}
		if res.Status == StatusFailed && e.Sends > 1 {
			return s.failedAgain(ctx, e, seller, res)
		}
		s.Answers.put(e.Key, res)
		return outcome(res), nil
	}
	s.Answers.forget(e.Key)
	if errors.Is(err, ErrCredentials) {
		// Infinia refused who we are (our signature, our appId: a key
		// pair rotated at Infinia under the run), not the request: it did
		// not take it, and no money moved. Not a refusal of the payout,
		// so never failed for it (its balance would go out under a new
		// requestNo, or a person pay it by hand): unknown as any send
		// error, asked about by its requestNo and sent again under it
		// once Infinia takes our key, and marked not taken. Its error
		// keeps its kind (usage): the engine sends nothing more.
		// Confirmed by a status query first, as a refusal of the request
		// is, it was one more refused request.
		return pipeline.Outcome{}, pipeline.NotTaken(err)
	}
	if errors.Is(err, ErrTooLarge) {
		return s.tooLarge(e, seller, err), nil
	}
	var ie *Error
	if errors.As(err, &ie) && ie.notTaken() {
		// "Retry later" to the end, or never sent: unknown to the
		// engine as any send error (asked by its requestNo), but it
		// moved nothing.
		return pipeline.Outcome{}, pipeline.NotTaken(err)
	}
	if ie == nil || ie.kind != failCode || ie.Transient() {
		return pipeline.Outcome{}, err
	}
	// Infinia refused. Make sure it holds nothing under this key.
	found, qerr := s.Client.RevenueShareStatus(ctx, e.Key)
	if qerr == nil {
		if oerr := ours(APIRevenueShareStatus, found, seller, e); oerr != nil {
			qerr = oerr
		}
	}
	switch {
	case qerr == nil:
		s.Answers.put(e.Key, found)
		return outcome(found), nil
	case errors.Is(qerr, ErrNotFound) && e.Sends > 1:
		return s.refusedAgain(e, "sent again after an unknown outcome", strings.TrimSpace(ie.Code+" "+ie.Message)), nil
	case errors.Is(qerr, ErrNotFound) && !errors.Is(ie, ErrNotFound) && !RefusalCode(ie.Code):
		// A code Infinia does not publish (not SUC-200, not SYS-001..008)
		// says nothing of whether the payout was taken: read as a refusal,
		// the payout failed on a status query that may lag behind it, and
		// its balance went out under a new requestNo beside it (found by a
		// review). It waits like a refused repeat.
		return s.refusedAgain(e, "answered with a code Infinia does not publish", strings.TrimSpace(ie.Code+" "+ie.Message)), nil
	case errors.Is(qerr, ErrNotFound):
		// A refusal of the request itself that Infinia holds nothing
		// under: not taken, no money moved.
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: strings.TrimSpace(ie.Code + " " + ie.Message), NotTaken: true}, nil
	}
	return pipeline.Outcome{}, errors.Join(err, qerr)
}

// tooLarge is the outcome of e when its request is too large for Infinia
// (ErrTooLarge, err): the client sent nothing, so the outcome is not
// unknown. Left unknown (as every send error was), it was asked about by
// every run, found never arrived, and "sent" again as large, for ever,
// while the run ended as if it were in flight. A first send is failed at
// once, its reason naming the seller and the size: the stage carries its
// balance and items and names it for a person (exit 4); sent as large
// again it fails again, under a new requestNo, until MaxAttempts holds it.
// A send again under the requestNo after an unknown outcome (Sends > 1)
// is not final: the first send may have arrived (a request that fit then:
// another key or chunk size since). It waits as a refused repeat does
// (pipeline.RefusedRepeat), never sent a third time, failed once Infinia
// has not known the requestNo for KnownAfter.
func (s RevenueShareSender) tooLarge(e pipeline.Effect, seller string, err error) pipeline.Outcome {
	why := fmt.Sprintf("revenue share to seller %s (Infinia id %s) not sent, too large for Infinia: %v", subjectSeller(e.Subject), clip(seller), err)
	if e.Sends <= 1 {
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: why, NotTaken: true}
	}
	out := s.refused().Refused(e, fmt.Sprintf("%s; requestNo %s was sent before with an unknown outcome and Infinia does not know it", why, e.Key))
	out.NotTaken = true // this send moved nothing: the first is the one waited for
	return out
}

// failedAgain confirms by a status query a FAILED answer to e sent again
// under its requestNo after an unknown outcome (Effect.Sends > 1): an
// Infinia that refuses a repeat may say so in the answer's status
// ("duplicate requestNo") rather than with a code, while its status query
// does not know the first send yet. Failed then, the payout's balance
// went to a new requestNo while the first could still pay it (found by a
// review). The query's answer about e is taken; one that does not know
// e's requestNo leaves it pending as a refused repeat (refusedAgain).
func (s RevenueShareSender) failedAgain(ctx context.Context, e pipeline.Effect, seller string, res RevenueShareResult) (pipeline.Outcome, error) {
	found, err := s.Client.RevenueShareStatus(ctx, e.Key)
	if err == nil {
		if oerr := ours(APIRevenueShareStatus, found, seller, e); oerr != nil {
			err = oerr
		}
	}
	switch {
	case err == nil:
		s.Answers.put(e.Key, found)
		return outcome(found), nil
	case errors.Is(err, ErrNotFound):
		s.Answers.forget(e.Key)
		return s.refusedAgain(e, "sent again after an unknown outcome", strings.TrimSpace(StatusFailed+" "+res.FailReason)), nil
	}
	s.Answers.forget(e.Key)
	return pipeline.Outcome{}, unknown(err) // the repeat's FAILED is not confirmed: says nothing of the first send
}

// Query asks Infinia about e.Key: ErrNotFound is OutcomeNotFound, unless
// e was planned longer than Memory ago (an error wrapping
// pipeline.ErrPastMemory: held for a person) or is a refused repeat
// waiting for its first send (pipeline.RefusedRepeat.NotFound: pending,
// or failed after KnownAfter).
func (s RevenueShareSender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	if e.Kind != KindRevenueShare {
		return pipeline.Outcome{}, fmt.Errorf("infiniapay: effect %s %s is not a %s", e.Kind, e.Key, KindRevenueShare)
	}
	res, err := s.Client.RevenueShareStatus(ctx, e.Key)
	if err == nil {
		seller := ""
		if res.SellerID != "" { // the seller it pays, looked up only when Infinia echoes one
			if seller, err = s.seller(ctx, e); err != nil {
				return pipeline.Outcome{}, err
			}
		}
		if oerr := ours(APIRevenueShareStatus, res, seller, e); oerr != nil {
			err = oerr
		}
	}
	if err != nil {
		s.Answers.forget(e.Key)
	} else {
		s.Answers.put(e.Key, res)
	}
	if errors.Is(err, ErrNotFound) {
		if perr := pipeline.PastMemory(e, s.Client.cfg.Now(), cmp.Or(s.Memory, DefaultMemory), "Infinia"); perr != nil {
			return pipeline.Outcome{}, perr // forgotten, perhaps: neither sent again nor failed
		}
		return s.refused().NotFound(e), nil // a refused repeat is not sent a third time
	}
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return outcome(res), nil
}

// refused is the rule for a refused repeat (pipeline.RefusedRepeat) with
// Infinia's clock and KnownAfter. Its mark names the requestNo, as it did
// when the rule was this package's: " (refused sent again, requestNo
// unknown since <time>)".
func (s RevenueShareSender) refused() pipeline.RefusedRepeat {
	return pipeline.RefusedRepeat{Provider: "Infinia", Key: "requestNo", KnownAfter: s.KnownAfter, Now: s.Client.cfg.Now}
}

// refusedAgain is the outcome of e refused by Infinia (refusal, its code
// and message) when the refusal does not prove the payout was not taken -
// sent again under its requestNo after an unknown outcome, or answered
// with a code Infinia does not publish (how says which) - and whose
// requestNo Infinia does not know: the rule of a refused repeat
// (pipeline.RefusedRepeat.Refused), pending until Infinia has not known
// it for KnownAfter, failed then.
func (s RevenueShareSender) refusedAgain(e pipeline.Effect, how, refusal string) pipeline.Outcome {
	return s.refused().Refused(e, fmt.Sprintf("Infinia refused requestNo %s %s (%s) and does not know it", e.Key, how, refusal))
}

func (s RevenueShareSender) seller(ctx context.Context, e pipeline.Effect) (string, error) {
	if e.Kind != KindRevenueShare {
		return "", fmt.Errorf("infiniapay: effect %s %s is not a %s", e.Kind, e.Key, KindRevenueShare)
	}
	if s.SellerID != nil {
		return s.SellerID(ctx, e)
	}
	seller, err := SubjectSeller(e.Subject, e.Currency)
	if err != nil {
		return "", fmt.Errorf("infiniapay: effect %s: %w", e.Key, err)
	}
	return seller, nil
}

// ours returns an error (ErrAnswer, an answer we cannot use) when
// Infinia's answer about e's requestNo echoes another seller (seller is
// the Infinia id e pays), currency or amount than e's: a signed SUCCESS
// about another payout was taken as this one (found by a review).
// Fields the answer does not echo are not compared.
func ours(api string, r RevenueShareResult, seller string, e pipeline.Effect) *Error {
	var why string
	switch {
	case r.SellerID != "" && r.SellerID != seller:
		why = fmt.Sprintf("answer about seller %q, the request pays %q", r.SellerID, seller)
	case r.Currency != "" && r.Currency != e.Currency:
		why = fmt.Sprintf("answer in %s, the request pays %s", r.Currency, e.Currency)
	default:
		amount, ok, err := r.reported(e.Currency)
		switch {
		case err != nil:
			why = fmt.Sprintf("amount without a currency, not one in %s: %v", e.Currency, err)
		case ok && amount != e.Amount:
			why = fmt.Sprintf("answer of %s, the request pays %s", pipeline.Money{Minor: amount, Currency: e.Currency}, pipeline.Money{Minor: e.Amount, Currency: e.Currency})
		default:
			return nil
		}
	}
	return &Error{API: api, RequestNo: e.Key, kind: failBadAnswer, Err: fmt.Errorf("%w: %s", ErrAnswer, why)}
}

func outcome(r RevenueShareResult) pipeline.Outcome {
	o := pipeline.Outcome{Status: pipeline.OutcomePending, Ref: r.Reference}
	switch r.Status {
	case StatusSuccess:
		o.Status = pipeline.OutcomeSucceeded
	case StatusFailed:
		o.Status, o.Reason = pipeline.OutcomeFailed, r.FailReason
	}
	return o
}
