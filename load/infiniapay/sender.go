package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
}

var _ pipeline.EffectSender = RevenueShareSender{}

// Send asks Infinia to pay the effect. PROCESSING is OutcomePending,
// SUCCESS OutcomeSucceeded, FAILED OutcomeFailed. An error means the outcome
// is unknown (ErrUnknownOutcome, retries exhausted, cancelled). A definite
// refusal (a non-transient code) is confirmed by a status query before it is
// reported as OutcomeFailed, so that a provider that refuses a repeated
// requestNo instead of replaying it can never make us pay twice.
func (s RevenueShareSender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	seller, err := s.seller(ctx, e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	res, err := s.Client.RevenueShare(ctx, RevenueShareRequest{
		RequestNo: e.Key, SellerID: seller, Currency: e.Currency, Amount: e.Amount, Note: e.Subject,
	})
	if err == nil {
		s.Answers.put(e.Key, res)
		return outcome(res), nil
	}
	s.Answers.forget(e.Key)
	var ie *Error
	if !errors.As(err, &ie) || ie.kind != failCode || ie.Transient() {
		return pipeline.Outcome{}, err
	}
	// Infinia refused. Make sure it holds nothing under this key.
	found, qerr := s.Client.RevenueShareStatus(ctx, e.Key)
	switch {
	case qerr == nil:
		s.Answers.put(e.Key, found)
		return outcome(found), nil
	case errors.Is(qerr, ErrNotFound):
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: strings.TrimSpace(ie.Code + " " + ie.Message)}, nil
	}
	return pipeline.Outcome{}, errors.Join(err, qerr)
}

// Query asks Infinia about e.Key: ErrNotFound is OutcomeNotFound.
func (s RevenueShareSender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	if e.Kind != KindRevenueShare {
		return pipeline.Outcome{}, fmt.Errorf("infiniapay: effect %s %s is not a %s", e.Kind, e.Key, KindRevenueShare)
	}
	res, err := s.Client.RevenueShareStatus(ctx, e.Key)
	if err != nil {
		s.Answers.forget(e.Key)
	} else {
		s.Answers.put(e.Key, res)
	}
	if errors.Is(err, ErrNotFound) {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
	}
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return outcome(res), nil
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
