package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
)

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
// ErrUnknownOutcome; ask ReceiverResult.
func (c *Client) AddReceiver(ctx context.Context, r NewReceiver) (ReceiverStatus, error) {
	sp := c.spec(APIAddReceiver, http.MethodPost, distributionPrefix+"receivers", nil, r.Account, r.SubMchID)
	sp.once = true
	if err := checkReceiver(r.SubMchID, r.Type, r.Account); err != nil {
		return ReceiverStatus{}, sp.fail(failLocal, err)
	}
	switch {
	case r.RelationType == "" || !tokenChars(r.RelationType):
		return ReceiverStatus{}, sp.fail(failLocal, errors.New("want a relation type"))
	case r.RelationType == RelationCustom && r.CustomRelation == "":
		return ReceiverStatus{}, sp.fail(failLocal, errors.New("relation CUSTOM needs a custom relation"))
	case r.Type == TypeMerchantID && r.Name == "":
		return ReceiverStatus{}, sp.fail(failLocal, errors.New("a MERCHANT_ID receiver needs the merchant's full name"))
	}
	in := wireNewReceiver{SubMchID: r.SubMchID, AppID: r.AppID, SubAppID: r.SubAppID, Type: r.Type, Account: r.Account,
		RelationType: r.RelationType, CustomRelation: r.CustomRelation,
		PartnershipFileID: r.PartnershipFileID, ApplicationFileID: r.ApplicationFileID}
	if r.Name != "" {
		name, err := c.encrypt(r.Name)
		if err != nil {
			return ReceiverStatus{}, sp.fail(failLocal, err)
		}
		in.Name, sp.serial = name, c.cfg.EncryptSerial
	}
	return c.receiver(ctx, sp, in, r.Type, r.Account)
}

// ReceiverResult returns a receiver's review state; ErrNotFound when the
// sub-merchant has no such receiver.
func (c *Client) ReceiverResult(ctx context.Context, subMchID, typ, account string) (ReceiverStatus, error) {
	q := url.Values{"sub_mchid": {subMchID}, "type": {typ}}
	sp := c.spec(APIReceiverResult, http.MethodGet, distributionPrefix+"receivers/"+account, q, account, subMchID)
	if err := checkReceiver(subMchID, typ, account); err != nil {
		return ReceiverStatus{}, sp.fail(failLocal, err)
	}
	return c.receiver(ctx, sp, nil, typ, account)
}

// DeleteReceiver removes a receiver: it can no longer be paid. Deleting is
// safe to repeat, so it is retried; ErrNotFound when the receiver does not
// exist (or a lost answer's delete already removed it).
func (c *Client) DeleteReceiver(ctx context.Context, r ReceiverRef) error {
	sp := c.spec(APIDeleteReceiver, http.MethodDelete, distributionPrefix+"receivers", nil, r.Account, r.SubMchID)
	if err := checkReceiver(r.SubMchID, r.Type, r.Account); err != nil {
		return sp.fail(failLocal, err)
	}
	return c.call(ctx, sp, wireReceiverRef(r), nil)
}

func (c *Client) receiver(ctx context.Context, sp spec, in any, typ, account string) (ReceiverStatus, error) {
	var out wireReceiverStatus
	if err := c.call(ctx, sp, in, &out); err != nil {
		return ReceiverStatus{}, err
	}
	if (out.Account != "" && out.Account != account) || (out.Type != "" && out.Type != typ) {
		e := sp.fail(failBadAnswer, fmt.Errorf("%w: answer for receiver %q %q", ErrAnswer, clip(out.Type), clip(out.Account)))
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
