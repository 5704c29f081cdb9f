package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// unreadEffects is a ledger whose effects cannot be read (the database
// stopped accepting connections once the items were read): every
// LatestEffect fails, and is counted.
type unreadEffects struct {
	*batchStore
	reads atomic.Int32
}

func (u *unreadEffects) LatestEffect(context.Context, string, string) (pipeline.Effect, bool, error) {
	u.reads.Add(1)
	return pipeline.Effect{}, false, errors.New(`pq: database "settle" is not currently accepting connections`)
}

// TestAWeChatLedgerThatCannotBeReadStopsTheStageToldOnce: each WeChat
// transaction's request is looked up in the ledger before it is checked
// or sent (plan, and PrepareStage's prepare). A ledger that could not be
// read gave one error line a transaction, and the stage went on to every
// other batch; it is the run's failure (pipeline.ErrNotRead): the stage
// stops at the first, told once, holds no one and sends nothing, as
// Infinia's does.
func TestAWeChatLedgerThatCannotBeReadStopsTheStageToldOnce(t *testing.T) {
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	for name, stageOf := range map[string]func(wechatpay.StageConfig) pipeline.StageFunc{
		"distribute": wechatpay.DistributeStage, "prepare": wechatpay.PrepareStage,
	} {
		t.Run(name, func(t *testing.T) {
			ledger := &unreadEffects{batchStore: newBatchStore(200)}
			api := &askedAPI{}
			stage := stageOf(wechatpay.StageConfig{Store: ledger, API: api, Batch: 50, Poll: time.Millisecond,
				Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 4})})
			_, err := stage(context.Background(), run)
			if !errors.Is(err, pipeline.ErrNotRead) {
				t.Fatalf("err %v, want the ledger's failure to read (ErrNotRead)", err)
			}
			if n := strings.Count(err.Error(), "not currently accepting"); n != 1 {
				t.Fatalf("the ledger's failure told %d times, want once:\n%.600s", n, err)
			}
			if n := ledger.count(pipeline.ItemRecorded); n != 200 {
				t.Errorf("%d of 200 items still recorded, want all (none paid)", n)
			}
			for no, it := range ledger.items {
				if it.Held {
					t.Errorf("%s held for a ledger that cannot be read", no)
				}
			}
			if len(ledger.effects) != 0 || api.calls.Load() != 0 {
				t.Errorf("%d requests planned, %d questions to WeChat Pay: want none on a ledger that cannot be read", len(ledger.effects), api.calls.Load())
			}
			if n := ledger.reads.Load(); n > 8+4 {
				t.Errorf("%d transactions read the ledger after it failed, want the stage stopped", n)
			}
		})
	}
}

// askedAPI is batchAPI, counting every question.
type askedAPI struct {
	batchAPI
	calls atomic.Int32
}

func (a *askedAPI) EnsureReceiver(ctx context.Context, sub string) (string, error) {
	a.calls.Add(1)
	return a.batchAPI.EnsureReceiver(ctx, sub)
}

func (a *askedAPI) Remaining(ctx context.Context, sub, txn string) (pipeline.Money, error) {
	a.calls.Add(1)
	return a.batchAPI.Remaining(ctx, sub, txn)
}

func (a *askedAPI) Send(ctx context.Context, e pipeline.Effect, o wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.calls.Add(1)
	return a.batchAPI.Send(ctx, e, o)
}

func (a *askedAPI) Query(ctx context.Context, e pipeline.Effect, o wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.calls.Add(1)
	return a.batchAPI.Query(ctx, e, o)
}
