package infiniapay

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// SellerStatus is Infinia's seller status notification, confirmed.
type SellerStatus struct {
	RequestNo string // the notification's id: deliveries are deduplicated on it
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

// WebhookHandler receives Infinia's seller status notifications: the
// request envelope, encrypted with our public key (decrypted with ourKey).
// Infinia's documented example carries no signature, so an unsigned
// notification is taken when it decrypts with our key into a well-formed
// status; a signature, when present, must verify with infiniaKey (checked
// before anything is decrypted). A notification is never acted on alone:
// confirm (a binding status query, e.g. Client.BindingStatus) gives the
// status onStatus records, in SellerStatus.Status. The handler answers the
// plain text SUCCESS once onStatus has recorded it, and again for a
// repeated requestNo without calling onStatus twice; 400 for a bad
// envelope or signature (the same answer whatever failed); 500 when the
// confirmation or onStatus fails, so that Infinia delivers it again.
//
// Repeats are remembered in memory, for the life of the handler: onStatus
// must still be idempotent, since a restart forgets them. Concurrent
// deliveries of one requestNo wait for each other.
func WebhookHandler(ourKey *rsa.PrivateKey, infiniaKey *rsa.PublicKey, confirm func(ctx context.Context, sellerID string) (string, error),
	onStatus func(context.Context, SellerStatus) error) http.Handler {
	return &webhook{ourKey: ourKey, infiniaKey: infiniaKey, confirm: confirm, onStatus: onStatus,
		done: map[string]bool{}, busy: map[string]chan struct{}{}}
}

type webhook struct {
	ourKey     *rsa.PrivateKey
	infiniaKey *rsa.PublicKey
	confirm    func(context.Context, string) (string, error)
	onStatus   func(context.Context, SellerStatus) error

	mu   sync.Mutex
	done map[string]bool          // requestNos recorded by onStatus
	busy map[string]chan struct{} // requestNos being recorded; closed when done
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	st, ok := h.read(r)
	if !ok {
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	switch h.record(r.Context(), st) {
	case nil:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "SUCCESS")
	default:
		http.Error(w, "not recorded, deliver again", http.StatusInternalServerError)
	}
}

// read opens the envelope; it says only whether it could.
func (h *webhook) read(r *http.Request) (SellerStatus, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhook+1))
	if err != nil || len(body) > maxWebhook {
		return SellerStatus{}, false
	}
	// Whether Infinia names the field requestData or responseData in a
	// notification is not documented: take either.
	var alt struct {
		ResponseData string `json:"responseData"`
	}
	var env RequestEnvelope
	if json.Unmarshal(body, &env) == nil && env.RequestData == "" && json.Unmarshal(body, &alt) == nil && alt.ResponseData != "" {
		env.RequestData = alt.ResponseData
		if body, err = json.Marshal(env); err != nil {
			return SellerStatus{}, false
		}
	}
	_, plain, err := OpenNotification(body, h.ourKey, h.infiniaKey)
	if err != nil {
		return SellerStatus{}, false
	}
	var ws wireSellerStatus
	if json.Unmarshal(plain, &ws) != nil || ws.RequestNo == "" || ws.SellerID == "" || ws.Status == "" {
		return SellerStatus{}, false
	}
	return SellerStatus{RequestNo: ws.RequestNo, SellerID: ws.SellerID, Notified: ws.Status}, true
}

// record calls onStatus once per requestNo that it accepts.
func (h *webhook) record(ctx context.Context, st SellerStatus) error {
	mine := make(chan struct{})
	for {
		h.mu.Lock()
		if h.done[st.RequestNo] {
			h.mu.Unlock()
			return nil
		}
		other, inFlight := h.busy[st.RequestNo]
		if !inFlight {
			h.busy[st.RequestNo] = mine
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
	status, err := h.confirm(ctx, st.SellerID)
	if err == nil {
		st.Status = status
		err = h.onStatus(ctx, st)
	}
	h.mu.Lock()
	delete(h.busy, st.RequestNo)
	if err == nil {
		h.done[st.RequestNo] = true
	}
	h.mu.Unlock()
	close(mine)
	return err
}
