package wechatpay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Adapter is the glue between the Client and the stage and the matcher of
// this package: it asks WeChat Pay what they need (API, Reconciler) in the
// pipeline's words, and keeps for the run what need not be asked twice
// (the platform's receiver, per sub-merchant). Its questions
// (EnsureReceiver, Remaining, Query; the matcher's Order, BillLines,
// Settlements) go through pipeline.Ask: a stage or matcher with a breaker
// (pipeline.WithBreaker) counts them with its engine's requests,
// and once WeChat Pay answers none of pipeline.NotAnsweringAfter in a row
// they are not made, or are cut, their error pipeline.ErrNotAnswering.
// Within an engine's send or question they are that request.
type Adapter struct {
	client   *Client
	receiver NewReceiver // the platform's receiver; SubMchID filled per call
	// Now is the adapter's clock (default time.Now): how long ago a
	// receiver was found under review.
	Now func() time.Time
	// BillLayout is the distribution bill's layout; the zero BillLayout
	// is DefaultBillLayout.
	BillLayout BillLayout
	// Memory is how long WeChat Pay's order query is taken to remember
	// an out_order_no (DistributionSender.Memory; 0: DefaultMemory).
	Memory time.Duration

	mu        sync.Mutex
	subs      map[string]*sync.Mutex // one receiver check at a time per sub-merchant
	effective map[string]bool        // sub-merchants whose receiver is EFFECTIVE
	refused   map[string]error       // sub-merchants where WeChat Pay refused the receiver, for the run
	review    map[string]underReview // sub-merchants whose receiver was last found in another state
}

// underReview is a receiver's state other than EFFECTIVE (INIT: under
// review), and when WeChat Pay said so.
type underReview struct {
	state string
	at    time.Time
}

// ReviewRecheck is how long the adapter takes a receiver found under
// review (any state but EFFECTIVE) to stay so: the sub-merchant's other
// transactions are held on that answer meanwhile, and the first one
// after it asks again. A review takes WeChat Pay hours or days; a
// sub-merchant's hundreds of transactions a run no longer ask it once
// each, in the upload stage's checks and again in distribute's.
const ReviewRecheck = time.Minute

var (
	_ API        = (*Adapter)(nil)
	_ Reconciler = (*Adapter)(nil)
)

// NewAdapter returns the adapter of client, paying commissions to
// receiver (its SubMchID is ignored: filled per sub-merchant).
func NewAdapter(client *Client, receiver NewReceiver) *Adapter {
	return &Adapter{client: client, receiver: receiver, Now: time.Now, subs: map[string]*sync.Mutex{}, effective: map[string]bool{},
		refused: map[string]error{}, review: map[string]underReview{}}
}

// EnsureReceiver checks (and adds when missing) the platform's receiver at
// a sub-merchant, one check at a time per sub-merchant, remembering those
// found EFFECTIVE for the rest of the run, those where WeChat Pay
// refused the receiver (asked once a run), and those under review for
// ReviewRecheck. An add whose answer was lost is resolved by the receiver
// result query (Client.EnsureReceiver), never left to fail the run.
func (a *Adapter) EnsureReceiver(ctx context.Context, subMchID string) (string, error) {
	a.mu.Lock()
	if state, ok := a.reviewing(subMchID); ok {
		a.mu.Unlock()
		return state, nil
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
	state, known := a.reviewing(subMchID) // decided while we waited
	refused := a.refused[subMchID]
	a.mu.Unlock()
	switch {
	case known:
		return state, nil
	case refused != nil:
		return "", refused
	}
	r := a.receiver
	r.SubMchID = subMchID
	// A lost add is resolved by the result query, here; an add again is
	// the same to WeChat Pay, so it is asked as a question (pipeline.Ask:
	// not made, or cut, once WeChat Pay is taken as not answering).
	st, err := pipeline.Ask(ctx, func(ctx context.Context) (ReceiverStatus, error) { return a.client.EnsureReceiver(ctx, r) })
	var we *Error
	if errors.As(err, &we) && we.Refused() {
		a.mu.Lock()
		a.refused[subMchID] = err
		a.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	if st.State == ReceiverEffective {
		a.effective[subMchID] = true
		delete(a.review, subMchID)
	} else {
		a.review[subMchID] = underReview{state: st.State, at: a.Now()}
	}
	a.mu.Unlock()
	return st.State, nil
}

// reviewing returns what the adapter knows of the receiver at subMchID
// without asking: EFFECTIVE for the run, or a review state for
// ReviewRecheck after WeChat Pay said so. a.mu is held.
func (a *Adapter) reviewing(subMchID string) (string, bool) {
	if a.effective[subMchID] {
		return ReceiverEffective, true
	}
	if r, ok := a.review[subMchID]; ok && a.Now().Sub(r.at) < ReviewRecheck {
		return r.state, true
	}
	return "", false
}

// Remaining returns what is still frozen for distribution in a
// transaction, in its currency: ErrNotReady when WeChat Pay cannot distribute
// it yet, pipeline.ErrNotFound when it does not know it.
func (a *Adapter) Remaining(ctx context.Context, subMchID, transactionID string) (pipeline.Money, error) {
	u, err := pipeline.Ask(ctx, func(ctx context.Context) (Unsplit, error) {
		return a.client.RemainingAmount(ctx, subMchID, transactionID)
	})
	var we *Error
	if errors.As(err, &we) && we.NotReady() {
		return pipeline.Money{}, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	if errors.Is(err, ErrNotFound) {
		return pipeline.Money{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	return pipeline.Money{Minor: u.Amount, Currency: u.Currency}, err
}

func (a *Adapter) sender(o Txn) DistributionSender {
	return DistributionSender{Client: a.client, Memory: a.Memory, Distribution: func(e pipeline.Effect) (Distribution, error) {
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
	ord.SubMchID = cmp.Or(ord.SubMchID, o.SubMchID)
	return out, a.status(ord), err
}

// Query asks WeChat Pay about the distribution or unfreeze e.Key, and
// returns its order as the matcher reads it (zero when it answered none).
func (a *Adapter) Query(ctx context.Context, e pipeline.Effect, o Txn) (pipeline.Outcome, OrderStatus, error) {
	var ord Order
	out, err := pipeline.Ask(ctx, func(ctx context.Context) (out pipeline.Outcome, err error) {
		out, ord, err = a.sender(o).QueryOrder(ctx, e)
		return out, err
	})
	ord.SubMchID = cmp.Or(ord.SubMchID, o.SubMchID)
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
