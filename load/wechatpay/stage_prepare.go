package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// PrepareStage is WeChat Pay's part of the upload stage
// (pipeline.Provider.Prepare): it runs beside the other providers' upload
// parts and sends no money. For each recorded wechatpay item with no
// request yet it makes DistributeStage's checks (the order in a currency
// WeChat Pay distributes, the platform's receiver EFFECTIVE at the
// sub-merchant, the transaction distributable and still
// holding the order's amount, the commission within the cap) and, when
// they pass, records the intent of its distribution or unfreeze (attempt
// 1, planned: nothing sent). DistributeStage, after the reject gate,
// drives what it finds planned without asking again, so WeChat's checks -
// a request a transaction, a quarter of its requests - no longer wait for
// the trade files and their statuses.
//
// What it cannot settle it leaves as it was, for DistributeStage to check
// again and hold with the reason (an order in a currency WeChat Pay does
// not distribute, a receiver still under review, a
// transaction not distributable yet, an amount that disagrees, an answer
// that cannot be read or did not come). It stops only for refused
// credentials (pipeline.KindUsage), its context, or the ledger. An intent
// recorded here is dropped by --reextract (it never left) and is sent by
// the distribute stage of this run or a later one: a refund after the
// check is a late refund, as it is after the payment.
//
// It reads the items in batches of c.Batch by order number, as
// DistributeStage does, each paced under WeChat Pay's limits (a check
// takes a token, an item already planned none). Stopped by its context
// (the uploads are done: pipeline.Beside), it returns what it did and
// the context's error; what it did not check, distribute checks. So too
// once WeChat Pay answers none of pipeline.NotAnsweringAfter checks in a
// row (pipeline.WithBreaker): it checks no more, and leaves the rest to
// distribute, which finds WeChat Pay not answering itself. A date past
// WeChat Pay's memory (StageConfig.Memory) is not checked or planned at
// all: distribute holds its transactions.
func PrepareStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		ctx = pipeline.WithBreaker(ctx) // its checks' (c.API's go through pipeline.Ask)
		sellers, err := c.Store.AccountsAt(ctx, run.ID, SellerAccount)
		if err != nil {
			return "", err
		}
		if c.pastMemory(run) != nil {
			// No new request of a date past WeChat Pay's memory: the
			// distribute stage holds its transactions, and says why.
			return "WeChat: nothing planned, the date is past WeChat Pay's memory (see distribute)", nil
		}
		st := &stageRun{c: &c, run: run, sellers: sellers}
		progress := pipeline.ProgressFrom(ctx)
		progress.Restart(0)
		var (
			mu                    sync.Mutex
			planned, before, left int
		)
		err = recordedBatches(ctx, &c, run.ID, progress, func(items []pipeline.Split) error {
			return c.Pacer.EachAsNeeded(ctx, len(items), func(i int) string { return st.order(items[i]).SubMchID }, func(ctx context.Context, i int) error {
				defer progress.Add(1)
				it := items[i]
				o := st.order(it)
				outcome, err := prepare(ctx, &c, run, it, o)
				mu.Lock()
				defer mu.Unlock()
				switch outcome {
				case prepared:
					planned++
				case plannedBefore:
					before++
				case leftToDistribute:
					left++
				}
				return err
			})
		})
		notAnswering := errors.Is(err, pipeline.ErrNotAnswering) && ctx.Err() == nil
		if notAnswering {
			// Said by distribute; what else went wrong (the ledger) is
			// still this stage's to say: it was dropped with it.
			err = pipeline.OtherThanNoAnswer(err)
		}
		if err != nil && ctx.Err() == nil {
			return "", err
		}
		summary := fmt.Sprintf("WeChat: %d transactions checked, their requests planned (sent in distribute)", planned)
		if before > 0 {
			summary += fmt.Sprintf(", %d planned or sent before", before)
		}
		if left > 0 {
			summary += fmt.Sprintf(", %d left to distribute's checks", left)
		}
		if notAnswering {
			// What was not checked is distribute's to check, and to find
			// WeChat Pay not answering (exit 1) if it still does not.
			return summary + ", the rest left to distribute (WeChat Pay is not answering)", nil
		}
		if err != nil {
			// Stopped: the stage's other parts were done (or the run is
			// stopping). What was not checked is distribute's to check.
			return summary + ", the rest left to distribute (stopped with the uploads)", err
		}
		return summary, nil
	}
}

// preparedAs is what PrepareStage did with one transaction.
type preparedAs int

const (
	prepared         preparedAs = iota + 1 // checked, its request planned
	plannedBefore                          // a request of it was in the ledger already
	leftToDistribute                       // checked and not settled now, or not checked: distribute checks it again
)

// prepare checks one transaction and plans its first request, as
// DistributeStage's plan does for a transaction with none. Only the
// ledger's errors (a read that failed wraps pipeline.ErrNotRead: the
// stage stops at the first, told once), refused credentials, WeChat Pay
// not answering (pipeline.ErrNotAnswering: the stage checks no more) and
// a stopped context are returned: the rest leaves the transaction to
// DistributeStage.
func prepare(ctx context.Context, c *StageConfig, run *pipeline.Run, it pipeline.Split, o Txn) (preparedAs, error) {
	first := firstAttempt(run, it, o)
	if _, ok, err := c.Store.LatestEffect(ctx, first.Kind, first.Subject); err != nil {
		return 0, pipeline.NotRead(err) // the run's failure: told once
	} else if ok {
		return plannedBefore, nil // a failed one too: its next attempt is distribute's to plan
	}
	h, err := check(ctx, c, it, o)
	switch {
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case pipeline.KindOf(err) == pipeline.KindUsage:
		return 0, err // the others would be refused alike: one line, exit 2
	case errors.Is(err, pipeline.ErrNotAnswering):
		return leftToDistribute, err // WeChat Pay is not answering: no check more
	case err != nil || h != nil:
		return leftToDistribute, nil
	}
	if _, err = c.Store.PlanEffect(ctx, first); errors.Is(err, pipeline.ErrKeyTaken) {
		return leftToDistribute, nil // distribute holds it, naming the other
	}
	return prepared, err
}
