package infiniapay

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/semaphore"
)

// SellerStatus is Infinia's seller status notification, confirmed.
type SellerStatus struct {
	RequestNo string // the notification's id: deliveries are deduplicated on it, SellerID and Notified
	SellerID  string
	Status    string // the binding status query's answer, the one to act on
	Notified  string // what the notification said: StatusActive or StatusFrozen (documented)
}

type wireSellerStatus struct {
	RequestNo string `json:"requestNo"`
	SellerID  string `json:"sellerId"`
	Status    string `json:"status"`
}

// maxWebhook bounds a webhook body.
const maxWebhook = 1 << 20

// maxNotificationBlocks bounds the RSA blocks of a notification's data.
// Each block costs a private-key operation to decrypt, and an unsigned
// notification is anyone's to send who holds our public key: a body of
// maxWebhook in blocks that decrypt took over 3 s of a core to open,
// before MaxConfirming bounds anything. A seller status notification
// ({requestNo, sellerId, status}) is a few blocks at Infinia's 64-byte
// chunks; 64 blocks hold 4 KiB of it.
const maxNotificationBlocks = 64

// maxNotificationField bounds a notification's requestNo, sellerId and
// status (assumed: Infinia's pages give no length; its example requestNo,
// ABR-20250903-0001, is 17 bytes). Each notification the query confirms
// is remembered, the latest maxRemembered of them, and anyone can make
// one confirmed (a seller of ours, in the status it has): with fields of
// the 4 KiB maxNotificationBlocks allows, that memory measured 267 MiB.
const maxNotificationField = 128

// WebhookHandler receives Infinia's seller status notifications: the
// request envelope, encrypted with our public key (decrypted with ourKey).
// Infinia's documented example carries no signature, so an unsigned
// notification is taken when it decrypts with our key into a well-formed
// status; a signature, when present, must verify with infiniaKey (checked
// before anything is decrypted). Anyone holding our public key can make
// an unsigned one, so a notification is only a hint, never the truth:
// confirm (a binding status query, e.g. Client.BindingStatus) gives the
// status onStatus records, in SellerStatus.Status. The handler answers the
// plain text SUCCESS once onStatus has recorded a status the query
// confirmed (SellerStatus.Confirmed), and again for a repeat of that
// notification without calling onStatus twice; 400 for a bad envelope or
// signature (the same answer whatever failed); 500 when the confirmation
// or onStatus fails, and 503 when the query does not say what the
// notification did (onStatus has recorded the query's answer), so that
// Infinia delivers it again.
//
// A repeat is the same requestNo, seller and notified status, and only a
// notification the query confirmed is remembered (the latest
// maxRemembered in memory; across restarts, Webhook.Seen): remembered by
// requestNo alone, or remembered whatever the query said, a notification
// anyone made with the requestNo of Infinia's next one (an unknown seller
// or a status the seller does not have yet) had that real one answered
// SUCCESS unheard (found by a review). onStatus must still be idempotent.
// Concurrent deliveries of one notification wait for each other.
//
// What one costs is bounded: a notification already dealt with costs no
// query (Seen), and at most Webhook.MaxConfirming are confirmed at a
// time; a delivery beyond them is answered 503 at once (Infinia delivers
// it again later, and the runs query every seller's binding anyway),
// rather than every one holding a goroutine in the queue of Infinia's
// rate limit, shared with the confirmations that matter. Before any of
// that, at most Webhook.MaxDecrypting notifications are decrypted at a
// time: one that gets no turn within decryptWait is answered 503 with
// Retry-After, undecrypted (Infinia delivers it again). A notification of
// maxNotificationBlocks took 76 ms of a core to decrypt, and about 26
// made a second kept both of a pod's cores busy (found by a review); now
// forged ones take MaxDecrypting cores at most, and a real one delivered
// meanwhile is delivered again.
func WebhookHandler(ourKey *rsa.PrivateKey, infiniaKey *rsa.PublicKey, confirm func(ctx context.Context, sellerID string) (string, error),
	onStatus func(context.Context, SellerStatus) error) *Webhook {
	return &Webhook{ourKey: ourKey, infiniaKey: infiniaKey, confirm: confirm, onStatus: onStatus,
		done: remembered[notification](maxRemembered), busy: map[notification]chan struct{}{},
		open: OpenNotification, decryptWait: decryptWait}
}

// Webhook is WebhookHandler's handler.
type Webhook struct {
	// Seen reports whether what st notifies (st.SellerID's status is
	// st.Notified) is recorded already, by an earlier process say: the
	// delivery is answered SUCCESS, not confirmed. It must not say so of
	// a notification only because its requestNo was seen: see
	// WebhookHandler. nil: only this handler's memory.
	Seen func(ctx context.Context, st SellerStatus) (bool, error)
	// MaxConfirming bounds the deliveries confirmed at a time (default
	// DefaultMaxConfirming).
	MaxConfirming int
	// MaxDecrypting bounds the notifications decrypted at a time (default
	// runtime.GOMAXPROCS(0): the pod's CPU limit, where runtime.NumCPU
	// is the node's cores), read at the first delivery.
	MaxDecrypting int

	ourKey     *rsa.PrivateKey
	infiniaKey *rsa.PublicKey
	confirm    func(context.Context, string) (string, error)
	onStatus   func(context.Context, SellerStatus) error

	open        func([]byte, *rsa.PrivateKey, *rsa.PublicKey) (RequestEnvelope, []byte, error) // OpenNotification
	decryptWait time.Duration                                                                  // for a turn to decrypt
	slotsOnce   sync.Once
	slots       *semaphore.Weighted // a turn to decrypt each: MaxDecrypting

	mu         sync.Mutex
	done       *lru.Cache[notification, struct{}] // notifications confirmed and recorded, the latest maxRemembered
	busy       map[notification]chan struct{}     // notifications being recorded; closed when done
	confirming int                                // deliveries being confirmed and recorded
}

// notification is what makes two deliveries the same notification.
type notification struct{ requestNo, sellerID, status string }

func (st SellerStatus) key() notification {
	return notification{st.RequestNo, st.SellerID, st.Notified}
}

// Confirmed reports whether the binding status query said what the
// notification did. Only a confirmed notification is remembered as dealt
// with.
func (st SellerStatus) Confirmed() bool { return st.Status != "" && st.Status == st.Notified }

// DefaultMaxConfirming is how many deliveries a Webhook confirms at a time
// by default.
const DefaultMaxConfirming = 8

// maxRemembered bounds the notifications a Webhook remembers as dealt with.
const maxRemembered = 1 << 16

// remembered is a set of the latest n keys (n > 0): the one used least
// lately is forgotten past n (hashicorp/golang-lru).
func remembered[K comparable](n int) *lru.Cache[K, struct{}] {
	c, err := lru.New[K, struct{}](n)
	if err != nil {
		panic(err) // n <= 0
	}
	return c
}

// ErrNotOurs is what a Webhook's confirm returns for a seller that is none
// of ours (an Infinia id the ledger has never known): the delivery is
// answered SUCCESS, neither confirmed with Infinia, nor recorded, nor
// remembered (Infinia's own notification of that requestNo about a seller
// of ours is dealt with when it comes). Anyone
// with our public key can make a notification that decrypts: one about
// any id made settle ask Infinia about it, on our appId's rate, and
// record it; a seller of ours is asked about by the run that pays it.
var ErrNotOurs = errors.New("not a seller of ours")

// errWebhookBusy: MaxConfirming deliveries are being confirmed.
var errWebhookBusy = errors.New("busy confirming other notifications")

// errDecryptBusy: MaxDecrypting notifications were being decrypted for
// all of decryptWait.
var errDecryptBusy = errors.New("busy decrypting other notifications")

// errBadNotification: the delivery is no notification we can open.
var errBadNotification = errors.New("bad notification")

// decryptWait is how long a delivery waits for a turn to decrypt before
// it is answered 503: a real notification of a few blocks decrypts in a
// few milliseconds, so it waits only while others are many.
const decryptWait = 100 * time.Millisecond

// errUnconfirmed: the binding status query did not say what the
// notification did. Its answer is recorded; the notification is not
// remembered, and is answered 503 so that Infinia delivers it again (its
// query may not say it yet).
var errUnconfirmed = errors.New("the binding status query does not say what the notification did")

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	st, err := h.read(r)
	if errors.Is(err, errDecryptBusy) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy, deliver again", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	switch err := h.record(r.Context(), st); {
	case err == nil:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "SUCCESS")
	case errors.Is(err, errWebhookBusy):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy, deliver again", http.StatusServiceUnavailable)
	case errors.Is(err, errUnconfirmed):
		w.Header().Set("Retry-After", "60")
		http.Error(w, "not confirmed by the binding status query, deliver again", http.StatusServiceUnavailable)
	default:
		http.Error(w, "not recorded, deliver again", http.StatusInternalServerError)
	}
}

// read opens the envelope; it says only whether it could
// (errBadNotification), or had no turn to decrypt it (errDecryptBusy).
// The body is read and parsed before the turn is taken: a slow sender
// holds no turn.
func (h *Webhook) read(r *http.Request) (SellerStatus, error) {
	bad := errBadNotification
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhook+1))
	if err != nil || len(body) > maxWebhook {
		return SellerStatus{}, bad
	}
	// Whether Infinia names the field requestData or responseData in a
	// notification is not documented: take either.
	var alt struct {
		ResponseData string `json:"responseData"`
	}
	var env RequestEnvelope
	if json.Unmarshal(body, &env) != nil {
		return SellerStatus{}, bad
	}
	if env.RequestData == "" && json.Unmarshal(body, &alt) == nil && alt.ResponseData != "" {
		env.RequestData = alt.ResponseData
		if body, err = json.Marshal(env); err != nil {
			return SellerStatus{}, bad
		}
	}
	if h.ourKey == nil || len(env.RequestData) > base64.StdEncoding.EncodedLen(maxNotificationBlocks*h.ourKey.Size()) {
		return SellerStatus{}, bad // not decrypted: see maxNotificationBlocks
	}
	release, err := h.turn(r.Context())
	if err != nil {
		return SellerStatus{}, err
	}
	plain, err := func() ([]byte, error) {
		defer release() // given back even if decryption panics (net/http recovers the handler)
		_, plain, err := h.open(body, h.ourKey, h.infiniaKey)
		return plain, err
	}()
	if err != nil {
		return SellerStatus{}, bad
	}
	var ws wireSellerStatus
	if json.Unmarshal(plain, &ws) != nil || ws.RequestNo == "" || ws.SellerID == "" || ws.Status == "" ||
		max(len(ws.RequestNo), len(ws.SellerID), len(ws.Status)) > maxNotificationField {
		return SellerStatus{}, bad
	}
	return SellerStatus{RequestNo: ws.RequestNo, SellerID: ws.SellerID, Notified: ws.Status}, nil
}

// turn waits up to decryptWait for one of MaxDecrypting turns to decrypt;
// release gives it back.
func (h *Webhook) turn(ctx context.Context) (release func(), err error) {
	h.slotsOnce.Do(func() {
		n := h.MaxDecrypting
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		h.slots = semaphore.NewWeighted(int64(n))
	})
	release = func() { h.slots.Release(1) }
	if h.slots.TryAcquire(1) {
		return release, nil
	}
	if h.decryptWait > 0 {
		ctx, cancel := context.WithTimeout(ctx, h.decryptWait)
		defer cancel()
		if h.slots.Acquire(ctx, 1) == nil {
			return release, nil
		}
	}
	return nil, errDecryptBusy
}

// record calls onStatus once per notification that the query confirms.
func (h *Webhook) record(ctx context.Context, st SellerStatus) error {
	limit := h.MaxConfirming
	if limit <= 0 {
		limit = DefaultMaxConfirming
	}
	key := st.key()
	mine := make(chan struct{})
	for {
		h.mu.Lock()
		if h.done.Contains(key) {
			h.mu.Unlock()
			return nil
		}
		other, inFlight := h.busy[key]
		if !inFlight {
			if h.confirming >= limit {
				h.mu.Unlock()
				return errWebhookBusy
			}
			h.busy[key] = mine
			h.confirming++
			h.mu.Unlock()
			break
		}
		h.mu.Unlock()
		select {
		case <-other:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	remember, err := h.confirmAndRecord(ctx, st)
	h.mu.Lock()
	delete(h.busy, key)
	h.confirming--
	if remember {
		h.done.Add(key, struct{}{}) // the oldest forgotten past maxRemembered (Seen still knows it)
	}
	h.mu.Unlock()
	close(mine)
	return err
}

// confirmAndRecord confirms st by query and records it, unless Seen says
// it is recorded already; remember says whether st is dealt with for good:
// recorded (or known) as confirmed.
func (h *Webhook) confirmAndRecord(ctx context.Context, st SellerStatus) (remember bool, err error) {
	if h.Seen != nil {
		if seen, err := h.Seen(ctx, st); err != nil || seen {
			return seen && err == nil, err
		}
	}
	status, err := h.confirm(ctx, st.SellerID)
	if errors.Is(err, ErrNotOurs) {
		return false, nil // answered SUCCESS: nothing to ask, nothing to record or remember
	}
	if err != nil {
		return false, err
	}
	st.Status = status
	if err := h.onStatus(ctx, st); err != nil {
		return false, err
	}
	if !st.Confirmed() {
		return false, errUnconfirmed
	}
	return true, nil
}
