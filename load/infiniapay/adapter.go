package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// stageAPI adapts the Client to what the stages and the matcher consume
// (API, Reconciler), its errors classified by notFound. Its questions to
// Infinia's API go through pipeline.Ask: a stage with a breaker
// (pipeline.WithBreaker) counts them with its engine's requests, and once
// Infinia answers none of pipeline.NotAnsweringAfter in a row they are
// not made, or are cut, their error pipeline.ErrNotAnswering. Within an
// engine's send or question (an upload's status) they are that request.
// ErrorRows downloads a file from the link Infinia gave, not a question
// to its API: not counted.
type stageAPI struct{ c *Client }

var (
	_ API        = stageAPI{}
	_ Reconciler = stageAPI{}
)

// notFound classifies the client's errors for the pipeline: a requestNo or
// seller Infinia does not know is pipeline.ErrNotFound; a definite refusal
// of one request (a code that is not transient), a request too large to
// send (ErrTooLarge: a seller id too long, say; it concerns that seller),
// an answer about its subject that cannot be used (ErrAnswer: an unknown
// status, say) or an error file in another layout is pipeline.ErrRefused,
// which the stages record against the request's subject; refused
// credentials keep their kind (usage). An envelope that does not open or verify concerns every
// request, and stays as it is.
func notFound(err error) error {
	var ie *Error
	switch {
	case err == nil, pipeline.KindOf(err) == pipeline.KindUsage:
		return err
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", pipeline.ErrNotFound, err)
	case errors.Is(err, ErrLayout), errors.Is(err, ErrAnswer), errors.Is(err, ErrTooLarge), errors.As(err, &ie) && ie.Definite():
		return fmt.Errorf("%w: %w", pipeline.ErrRefused, err)
	}
	return err
}

// SubjectOnly reports whether err, from a call about one seller or
// request, concerns it alone: Infinia does not know it, refused it
// definitely, or answered about it what cannot be used (the callers going
// through many go on with the others).
func SubjectOnly(err error) bool { return pipeline.SubjectOnly(notFound(err)) }

// classified is an EffectSender whose errors are classified by notFound.
type classified struct{ pipeline.EffectSender }

func (c classified) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	o, err := c.EffectSender.Send(ctx, e)
	return o, notFound(err)
}

// Prepare is its sender's (pipeline.EffectPreparer), when it has one:
// the seller's Infinia id read before the engine marks a share sent.
func (c classified) Prepare(ctx context.Context, e pipeline.Effect) (pipeline.EffectSender, error) {
	p, ok := c.EffectSender.(pipeline.EffectPreparer)
	if !ok {
		return c, nil
	}
	s, err := p.Prepare(ctx, e)
	if err != nil {
		return nil, notFound(err)
	}
	return classified{s}, nil
}

func (c classified) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	o, err := c.EffectSender.Query(ctx, e)
	return o, notFound(err)
}

func (a stageAPI) UploadStatus(ctx context.Context, f pipeline.TradeFile) (string, string, error) {
	u, err := pipeline.Ask(ctx, func(ctx context.Context) (Upload, error) { return a.c.UploadStatus(ctx, f.RequestNo) })
	if err == nil {
		// The answer's seller names this file (as its name does), and its
		// currency is the file's: a SUCCESS about another seller's file
		// made these items uploaded, to be paid (found by a review).
		var why string
		if u.Currency != "" && u.Currency != f.Currency {
			why = fmt.Sprintf("answer in %s, the file is in %s", u.Currency, f.Currency)
		} else if u.SellerID != "" {
			if name, nerr := a.c.TradeFileName(u.SellerID, f.Currency, f.Date, f.RequestNo); nerr != nil || name != f.Name {
				why = fmt.Sprintf("answer about seller %q, not the seller of %s", u.SellerID, f.Name)
			}
		}
		if why != "" {
			err = &Error{API: APIUploadStatus, RequestNo: f.RequestNo, kind: failBadAnswer, Err: fmt.Errorf("%w: %s", ErrAnswer, why)}
		}
	}
	return u.Status, u.ErrorFileURL, notFound(err)
}

func (a stageAPI) ErrorRows(ctx context.Context, url string) ([]pipeline.ProviderReject, error) {
	rows, err := a.c.ErrorFile(ctx, url)
	out := make([]pipeline.ProviderReject, len(rows))
	for i, r := range rows {
		out[i] = pipeline.ProviderReject{OrderNo: r.OrderNo, Reason: r.Reason}
	}
	return out, notFound(err)
}

func (a stageAPI) BindingStatus(ctx context.Context, requestNo, infiniaID string) (string, error) {
	b, err := pipeline.Ask(ctx, func(ctx context.Context) (Binding, error) { return a.c.BindingStatus(ctx, requestNo, infiniaID) })
	return b.Status, notFound(err)
}

func (a stageAPI) Balance(ctx context.Context, requestNo string, cur pipeline.Currency) (int64, error) {
	b, err := pipeline.Ask(ctx, func(ctx context.Context) (Balance, error) { return a.c.Balance(ctx, requestNo, cur) })
	return b.Available, notFound(err)
}

func (a stageAPI) RevenueShareStatus(ctx context.Context, requestNo string) (RevenueShareResult, error) {
	r, err := pipeline.Ask(ctx, func(ctx context.Context) (RevenueShareResult, error) { return a.c.RevenueShareStatus(ctx, requestNo) })
	return r, notFound(err)
}

func (a stageAPI) AvailableShare(ctx context.Context, requestNo, infiniaID string, cur pipeline.Currency) (int64, error) {
	v, err := pipeline.Ask(ctx, func(ctx context.Context) (int64, error) { return a.c.AvailableShare(ctx, requestNo, infiniaID, cur) })
	return v, notFound(err)
}

// sellerIDs maps a revenue share's subject (which names the platform's
// seller) to the seller's Infinia id recorded with the effect's run, or
// the latest recorded for a seller the run did not record (Store.AccountOf,
// as the candidates it was planned from have it): one look-up by index
// for each request, rather than every seller of the run held for the life
// of the process.
func sellerIDs(store AccountStore) func(context.Context, pipeline.Effect) (string, error) {
	return func(ctx context.Context, e pipeline.Effect) (string, error) {
		id, err := SubjectSeller(e.Subject, e.Currency)
		if err != nil {
			return "", err
		}
		account, err := store.AccountOf(ctx, e.RunID, SellerAccount, id)
		if err != nil {
			// The ledger's failure, not the payout's: the run stops at it.
			return "", pipeline.NotRead(fmt.Errorf("the Infinia seller id of %s: %w", id, err))
		}
		if account == "" {
			return "", fmt.Errorf("seller %s of %s has no Infinia seller id", id, e.Subject)
		}
		return account, nil
	}
}

// AccountStore reads the provider account a run recorded for a seller
// (the ledger's AccountOf).
type AccountStore interface {
	AccountOf(ctx context.Context, runID int64, provider, sellerID string) (string, error)
}

// NewRevenueShareSender is the revenue share sender of a run: the seller's
// Infinia id read from store, answers kept in answers (nil: none),
// knownAfter and memory as RevenueShareSender's KnownAfter and Memory.
// settle resolve asks Infinia with it, as the run does, that a share is
// held past the status query's memory.
func NewRevenueShareSender(c *Client, store AccountStore, answers *ShareAnswers, knownAfter, memory time.Duration) RevenueShareSender {
	return RevenueShareSender{Client: c, SellerID: sellerIDs(store), Answers: answers, KnownAfter: knownAfter, Memory: memory}
}
