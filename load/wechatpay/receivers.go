package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/settlekit/settle/pipeline"
)

// Receiver relation types (the sub-merchant's relation to the receiver)
// and review states. A receiver is INIT after it is added and EFFECTIVE
// once WeChat Pay approved it; only EFFECTIVE receivers can be paid.
const (
	RelationSupplier           = "SUPPLIER"
	RelationDistributor        = "DISTRIBUTOR"
	RelationTaxServiceProvider = "TAX_SERVICE_PROVIDER"
	RelationITServiceProvider  = "IT_SERVICE_PROVIDER"
	RelationCustom             = "CUSTOM"

	ReceiverInit      = "INIT"
	ReceiverEffective = "EFFECTIVE"

	// MaxCustomRelation is the most characters of a receiver's
	// custom_relation ("本字段最多10个字": at most 10 characters; the
	// mainland Adding Receiver API and its model in WeChat's Go SDK
	// v0.2.20, services/profitsharing; the Global page's figure could not
	// be retrieved here, so the mainland one is kept, as for
	// MaxDescription). wechatpaytest refuses a longer one (PARAM_ERROR).
	MaxCustomRelation = 10
)

// relations are the relation types WeChat Pay Global publishes for a
// receiver (PROVIDERS.md); wechatpaytest refuses any other (PARAM_ERROR).
var relations = []string{RelationSupplier, RelationDistributor, RelationTaxServiceProvider, RelationITServiceProvider, RelationCustom}

// ReviewFailed reports whether a receiver's state says WeChat Pay's
// review ended without approving it: any state but INIT (under review)
// and EFFECTIVE (approved), which is all WeChat Pay publishes of the
// states ("Adding Receiver": INIT once added, EFFECTIVE once approved;
// after a failed review the receiver is added again, with new materials,
// while INIT and EFFECTIVE ones cannot be). Such a receiver never becomes
// EFFECTIVE by itself: a person adds it again (ReAddReceiver).
func ReviewFailed(state string) bool {
	return state != ReceiverInit && state != ReceiverEffective
}

// NewReceiver adds a receiver for a sub-merchant's distributions.
type NewReceiver struct {
	SubMchID          string
	AppID             string // required for PERSONAL_OPENID
	SubAppID          string // required for PERSONAL_SUB_OPENID
	Type              string // TypeMerchantID, TypePersonalOpenID or TypePersonalSubOpenID
	Account           string
	Name              string // plain; sent encrypted. Required for MERCHANT_ID (the merchant's full name)
	RelationType      string // e.g. RelationSupplier
	CustomRelation    string // with RelationCustom
	PartnershipFileID string // optional: the partnership contract, from the file upload API
	ApplicationFileID string // optional: the receiver application letter
}

// Check says why WeChat Pay would refuse to add r at any sub-merchant
// (nil: it would not): a relation type it does not publish, a CUSTOM
// relation without custom_relation or with one longer than
// MaxCustomRelation, a receiver type it does not know, or a MERCHANT_ID
// receiver without the merchant's full name. The platform's receiver is
// added at every sub-merchant: refused, every order with a commission
// was held, every run. It is checked when settle starts (a usage error),
// and by AddReceiver.
func (r NewReceiver) Check() error {
	switch {
	case !slices.Contains(relations, r.RelationType):
		return fmt.Errorf("relation type %q: want one of %s", clip(r.RelationType), strings.Join(relations, ", "))
	case r.RelationType == RelationCustom && r.CustomRelation == "":
		return errors.New("relation CUSTOM needs a custom relation")
	case utf8.RuneCountInString(r.CustomRelation) > MaxCustomRelation:
		return fmt.Errorf("custom relation %q: at most %d characters", clip(r.CustomRelation), MaxCustomRelation)
	case !slices.Contains(receiverKind, r.Type):
		return fmt.Errorf("unknown receiver type %q", clip(r.Type))
	case r.Type == TypeMerchantID && r.Name == "":
		return errors.New("a MERCHANT_ID receiver needs the merchant's full name")
	}
	return nil
}

// ReceiverRef names a receiver of a sub-merchant.
type ReceiverRef struct {
	SubMchID string
	AppID    string // optional
	SubAppID string // optional
	Type     string
	Account  string
}

// ReceiverStatus is WeChat Pay's word on a receiver.
type ReceiverStatus struct {
	SubMchID       string
	Type           string
	Account        string
	RelationType   string
	CustomRelation string
	State          string // ReceiverInit, ReceiverEffective, or another review state (assumed free text)
	FailReason     string // why a review failed, when it did (assumed field)
}

type (
	wireNewReceiver struct {
		SubMchID          string `json:"sub_mchid"`
		AppID             string `json:"appid,omitempty"`
		SubAppID          string `json:"sub_appid,omitempty"`
		Type              string `json:"type"`
		Account           string `json:"account"`
		Name              string `json:"name,omitempty"`
		RelationType      string `json:"relation_type"`
		CustomRelation    string `json:"custom_relation,omitempty"`
		PartnershipFileID string `json:"partnership_file_id,omitempty"`
		ApplicationFileID string `json:"application_file_id,omitempty"`
	}
	wireReceiverRef struct {
		SubMchID string `json:"sub_mchid"`
		AppID    string `json:"appid,omitempty"`
		SubAppID string `json:"sub_appid,omitempty"`
		Type     string `json:"type"`
		Account  string `json:"account"`
	}
	wireReceiverStatus struct {
		SubMchID       string `json:"sub_mchid"`
		Type           string `json:"type"`
		Account        string `json:"account"`
		RelationType   string `json:"relation_type"`
		CustomRelation string `json:"custom_relation"`
		State          string `json:"state"`
		FailReason     string `json:"fail_reason"`
	}
)

// AddReceiver asks WeChat Pay to add a receiver; it starts INIT, under
// review. Adding a receiver that is INIT or EFFECTIVE is refused, so the
// request is not resent blindly: an answer that never arrived wraps
// ErrUnknownOutcome; ask ReceiverResult, or use EnsureReceiver, which
// does.
func (c *Client) AddReceiver(ctx context.Context, r NewReceiver) (ReceiverStatus, error) {
	sp := c.spec(APIAddReceiver, http.MethodPost, distributionPrefix+"receivers", nil, r.Account, r.SubMchID)
	sp.once = true
	if err := checkReceiver(r.SubMchID, r.Type, r.Account); err != nil {
		return ReceiverStatus{}, sp.fail(failLocal, err)
	}
	if err := r.Check(); err != nil {
		return ReceiverStatus{}, sp.fail(failLocal, err)
	}
	in := wireNewReceiver{SubMchID: r.SubMchID, AppID: r.AppID, SubAppID: r.SubAppID, Type: r.Type, Account: r.Account,
		RelationType: r.RelationType, CustomRelation: r.CustomRelation,
		PartnershipFileID: r.PartnershipFileID, ApplicationFileID: r.ApplicationFileID}
	if r.Name != "" {
		name, err := c.encrypt(r.Name)
		if err != nil {
			return ReceiverStatus{}, sp.fail(failLocal, err)
		}
		in.Name = name
	}
	return c.receiver(ctx, sp, in, r.Type, r.Account)
}

// ReceiverResult returns a receiver's review state; ErrNotFound when the
// sub-merchant has no such receiver. r.AppID is sent for a PERSONAL_OPENID
// receiver and r.SubAppID for a PERSONAL_SUB_OPENID one (an OpenID is
// scoped to its app); both are required there.
func (c *Client) ReceiverResult(ctx context.Context, r ReceiverRef) (ReceiverStatus, error) {
	q := url.Values{"sub_mchid": {r.SubMchID}, "type": {r.Type}}
	sp := c.spec(APIReceiverResult, http.MethodGet, distributionPrefix+"receivers/"+r.Account, nil, r.Account, r.SubMchID)
	if err := checkReceiver(r.SubMchID, r.Type, r.Account); err != nil {
		return ReceiverStatus{}, sp.fail(failLocal, err)
	}
	switch {
	case r.Type == TypePersonalOpenID && r.AppID == "":
		return ReceiverStatus{}, sp.fail(failLocal, errors.New("a PERSONAL_OPENID receiver is queried with its appid"))
	case r.Type == TypePersonalSubOpenID && r.SubAppID == "":
		return ReceiverStatus{}, sp.fail(failLocal, errors.New("a PERSONAL_SUB_OPENID receiver is queried with its sub_appid"))
	case r.Type == TypePersonalOpenID:
		q.Set("appid", r.AppID)
	case r.Type == TypePersonalSubOpenID:
		q.Set("sub_appid", r.SubAppID)
	}
	sp.target.RawQuery = q.Encode()
	return c.receiver(ctx, sp, nil, r.Type, r.Account)
}

// DeleteReceiver removes a receiver: it can no longer be paid. WeChat Pay
// answers 204 No Content. Deleting is safe to repeat, so it is retried;
// ErrNotFound when the receiver does not exist (or a lost answer's delete
// already removed it).
func (c *Client) DeleteReceiver(ctx context.Context, r ReceiverRef) error {
	sp := c.spec(APIDeleteReceiver, http.MethodDelete, distributionPrefix+"receivers", nil, r.Account, r.SubMchID)
	if err := checkReceiver(r.SubMchID, r.Type, r.Account); err != nil {
		return sp.fail(failLocal, err)
	}
	return c.call(ctx, sp, wireReceiverRef(r), nil)
}

// EnsureReceiver returns the state of receiver r at its sub-merchant,
// adding it when WeChat Pay does not know it. An add whose answer was lost
// (ErrUnknownOutcome), or that WeChat Pay refused (a receiver added in the
// meantime is refused as a duplicate), is resolved by the receiver result
// query: found, its state is the answer; still not found after a lost
// answer, the add was never applied and is sent once more. A receiver
// WeChat Pay knows is returned in whatever state it is: one whose review
// failed (ReviewFailed) is added again by a person, once its new
// materials are uploaded (ReAddReceiver), never by the nightly run.
func (c *Client) EnsureReceiver(ctx context.Context, r NewReceiver) (ReceiverStatus, error) {
	st, err := c.ReceiverResult(ctx, refOf(r))
	if !errors.Is(err, ErrNotFound) {
		return st, err
	}
	return c.addResolved(ctx, r)
}

// ReAddReceiver adds again a receiver whose review WeChat Pay did not
// approve (ReviewFailed): WeChat Pay takes it again, under review (INIT),
// once its new materials are uploaded (r's file ids). A receiver WeChat
// Pay does not know is added; one INIT or EFFECTIVE is returned as it is,
// nothing sent (WeChat Pay refuses to add it again), and added false: a
// person told "added" would take it for one this call made. A lost answer
// is resolved by the receiver result query, as by EnsureReceiver.
func (c *Client) ReAddReceiver(ctx context.Context, r NewReceiver) (st ReceiverStatus, added bool, err error) {
	st, err = c.ReceiverResult(ctx, refOf(r))
	if err == nil && !ReviewFailed(st.State) || err != nil && !errors.Is(err, ErrNotFound) {
		return st, false, err
	}
	st, err = c.addResolved(ctx, r)
	return st, err == nil, err
}

func refOf(r NewReceiver) ReceiverRef {
	return ReceiverRef{SubMchID: r.SubMchID, AppID: r.AppID, SubAppID: r.SubAppID, Type: r.Type, Account: r.Account}
}

// addResolved adds r, resolving an add whose answer was lost, or that
// WeChat Pay refused, by the receiver result query: found under review or
// approved, it was added (by this add, or in the meantime); not found, or
// found as before the add (its review failed), after a lost answer, the
// add was never applied and is sent once more.
func (c *Client) addResolved(ctx context.Context, r NewReceiver) (ReceiverStatus, error) {
	for try := 0; ; try++ {
		st, err := c.AddReceiver(ctx, r)
		var we *Error
		if err == nil || !errors.As(err, &we) || !(errors.Is(err, ErrUnknownOutcome) || we.Refused()) {
			return st, err
		}
		found, qerr := c.ReceiverResult(ctx, refOf(r))
		switch {
		case qerr == nil && !ReviewFailed(found.State):
			return found, nil
		case qerr != nil && !errors.Is(qerr, ErrNotFound):
			return ReceiverStatus{}, errors.Join(err, qerr)
		case we.Refused() || try > 0:
			return ReceiverStatus{}, err // refused, and not added: the refusal stands
		}
		// The lost add was never applied: send it again.
	}
}

func (c *Client) receiver(ctx context.Context, sp spec, in any, typ, account string) (ReceiverStatus, error) {
	var out wireReceiverStatus
	if err := c.call(ctx, sp, in, &out); err != nil {
		return ReceiverStatus{}, err
	}
	// The receiver at another sub-merchant is not ours either: its state
	// there was taken as its state at ours.
	if (out.Account != "" && out.Account != account) || (out.Type != "" && out.Type != typ) || (out.SubMchID != "" && out.SubMchID != sp.subMchID) {
		e := sp.fail(failBadAnswer, fmt.Errorf("%w: answer for receiver %q %q of sub-merchant %q", ErrAnswer, clip(out.Type), clip(out.Account), clip(out.SubMchID)))
		if sp.once {
			e.Err = unknown(e.Err)
		}
		return ReceiverStatus{}, e
	}
	if out.State == "" {
		// No state is no answer about the review: read as one that
		// failed (ReviewFailed), it was held for a person as "not
		// approved", and settle receivers add added it again.
		e := sp.fail(failBadAnswer, fmt.Errorf("%w: receiver %q with no state", ErrAnswer, clip(account)))
		if sp.once {
			e.Err = unknown(e.Err)
		}
		return ReceiverStatus{}, e
	}
	return ReceiverStatus{SubMchID: out.SubMchID, Type: typ, Account: account, RelationType: out.RelationType,
		CustomRelation: out.CustomRelation, State: clip(out.State), FailReason: clip(out.FailReason)}, nil
}

func checkReceiver(subMchID, typ, account string) error {
	switch {
	case subMchID == "":
		return errors.New("no sub_mchid")
	case !slices.Contains(receiverKind, typ):
		return fmt.Errorf("unknown receiver type %q", clip(typ))
	case !validAccount(account):
		return errors.New("account must be 1 to 64 characters of [0-9A-Za-z_-]")
	}
	return nil
}

// preflightKey is the out_order_no Preflight asks about: never one of ours
// (they start with "WX"), so WeChat Pay answers "not found".
const preflightKey = "SETTLE-PREFLIGHT"

// Preflight proves, before anything is sent, that WeChat Pay accepts our
// credentials and that we can verify its answers: an authenticated query of
// an order that does not exist, whose signed "not found" (or any other
// signed refusal of the question itself) is success. Refused credentials
// (HTTP 401) or an answer that does not verify with our platform key are a
// pipeline.KindUsage error in one line; an unsigned 4xx answer (not WeChat
// Pay: a wrong URL, a proxy) is one too, and so are answers not WeChat
// Pay's to every attempt (ErrNotWeChat: the URL, or a proxy before it,
// answers with a page of its own; one such answer is retried, and later
// in the run one is a transport problem). A network failure, a 5xx or
// WeChat Pay's signature probe (ErrSignProbe) is returned as it is: it
// says nothing of the configuration.
func (c *Client) Preflight(ctx context.Context) error {
	q := url.Values{"sub_mchid": {c.cfg.MchID}, "transaction_id": {preflightKey}}
	sp := c.spec(APIPreflight, http.MethodGet, distributionPrefix+"orders/"+preflightKey, q, "", "")
	err := c.call(ctx, sp, nil, nil)
	var e *Error
	switch {
	case err == nil || pipeline.KindOf(err) == pipeline.KindUsage || !errors.As(err, &e):
		return err
	case e.signed && e.HTTPStatus >= 400 && e.HTTPStatus < 500 && e.HTTPStatus != http.StatusTooManyRequests:
		return nil // WeChat Pay read our signature and answered, signed, about the order
	case errors.Is(err, ErrSignProbe):
		return err // WeChat Pay's signature probe to every attempt: no word on the configuration
	case e.HTTPStatus >= 400 && e.HTTPStatus < 500 && !e.signed:
		return pipeline.E(pipeline.KindUsage, "WeChat Pay", fmt.Errorf("an unsigned HTTP %d answer: not WeChat Pay's API (check its URL): %w", e.HTTPStatus, err))
	case errors.Is(err, ErrNotWeChat):
		return pipeline.E(pipeline.KindUsage, "WeChat Pay", fmt.Errorf("answers that are not WeChat Pay's to every attempt (check its URL, and any proxy before it): %w", err))
	}
	return err
}
