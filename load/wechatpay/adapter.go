package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// Adapter is the glue between the Client and the stage and the matcher of
// this package: it asks WeChat Pay what they need (API, Reconciler) in the
// pipeline's words, and keeps for the run what need not be asked twice
// (the platform's receiver, per sub-merchant).
type Adapter struct {
	client   *Client
	receiver NewReceiver // the platform's receiver; SubMchID filled per call

	mu        sync.Mutex
	subs      map[string]*sync.Mutex // one receiver check at a time per sub-merchant
	effective map[string]bool        // sub-merchants whose receiver is EFFECTIVE
	refused   map[string]error       // sub-merchants where WeChat Pay refused the receiver, for the run
}

var (
	_ API        = (*Adapter)(nil)
	_ Reconciler = (*Adapter)(nil)
)

// NewAdapter returns the adapter of client, paying commissions to
// receiver (its SubMchID is ignored: filled per sub-merchant).
func NewAdapter(client *Client, receiver NewReceiver) *Adapter {
	return &Adapter{client: client, receiver: receiver, subs: map[string]*sync.Mutex{}, effective: map[string]bool{},
		refused: map[string]error{}}
}

// EnsureReceiver checks (and adds when missing) the platform's receiver at
// a sub-merchant, one check at a time per sub-merchant, remembering those
// found EFFECTIVE for the rest of the run, and those where WeChat Pay
// refused the receiver (asked once a run). An add whose answer was lost is
// resolved by the receiver result query (Client.EnsureReceiver), never
// left to fail the run.
func (a *Adapter) EnsureReceiver(ctx context.Context, subMchID string) (string, error) {
	a.mu.Lock()
	if a.effective[subMchID] {
		a.mu.Unlock()
		return ReceiverEffective, nil
	}
	if err := a.refused[subMchID]; err != nil {
		a.mu.Unlock()
		return "", err // asked once a run: the other transactions are held with the same answer
	}
	lock := a.subs[subMchID]
	if lock == nil {
		lock = &sync.Mutex{}
		a.subs[subMchID] = lock
	}
	a.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	a.mu.Lock()
	known, refused := a.effective[subMchID], a.refused[subMchID] // decided while we waited
	a.mu.Unlock()
	switch {
	case known:
		return ReceiverEffective, nil
	case refused != nil:
		return "", refused
	}
	r := a.receiver
	r.SubMchID = subMchID
	st, err := a.client.EnsureReceiver(ctx, r) // a lost add is resolved by the result query, here
	var we *Error
	if errors.As(err, &we) && we.Refused() {
		a.mu.Lock()
		a.refused[subMchID] = err
		a.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	if st.State == ReceiverEffective {
		a.mu.Lock()
		a.effective[subMchID] = true
		a.mu.Unlock()
	}
	return st.State, nil
}

// Remaining returns what is still frozen for distribution in a
// transaction (minor units): ErrNotReady when WeChat Pay cannot distribute
// it yet, pipeline.ErrNotFound when it does not know it.
func (a *Adapter) Remaining(ctx context.Context, subMchID, transactionID string) (int64, error) {
	u, err := a.client.RemainingAmount(ctx, subMchID, transactionID)
	var we *Error
	if errors.As(err, &we) && we.Code == CodeOrderNotReady {
		return 0, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	if errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	return u.Amount, err
}

func (a *Adapter) sender(o Txn) DistributionSender {
	return DistributionSender{Client: a.client, Distribution: func(e pipeline.Effect) (Distribution, error) {
		d := Distribution{SubMchID: o.SubMchID, TransactionID: o.TransactionID, UnfreezeUnsplit: true}
		if o.Commission > 0 {
			d.Receivers = []Share{{Type: a.receiver.Type, Account: a.receiver.Account, Currency: o.Currency,
				Amount: o.Commission, Description: "platform commission"}}
		}
		return d, nil
	}}
}

// Send sends the distribution (or unfreeze, with no commission) of an
// order, keyed by e.Key (out_order_no), and returns WeChat Pay's order as
// the matcher reads it (zero when it answered none).
func (a *Adapter) Send(ctx context.Context, e pipeline.Effect, o Txn) (pipeline.Outcome, OrderStatus, error) {
	out, ord, err := a.sender(o).SendOrder(ctx, e)
	return out, a.status(ord), err
}

// Query asks WeChat Pay about the distribution or unfreeze e.Key, and
// returns its order as the matcher reads it (zero when it answered none).
func (a *Adapter) Query(ctx context.Context, e pipeline.Effect, o Txn) (pipeline.Outcome, OrderStatus, error) {
	out, ord, err := a.sender(o).QueryOrder(ctx, e)
	return out, a.status(ord), err
}

// Preflight proves the WeChat Pay credentials before anything is sent: a
// cheap authenticated query (Client.Preflight). Refused credentials, or
// answers our platform key cannot verify, are a configuration error (exit
// 2) in one line naming WeChat Pay; a WeChat Pay that does not answer is
// returned as it is.
func (a *Adapter) Preflight(ctx context.Context) error {
	return a.client.Preflight(ctx)
}
