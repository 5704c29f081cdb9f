package wechatpaytest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/settlekit/settle/load/wechatpay"
)

// receiver is a sub-merchant's receiver; left is how many result queries
// still answer INIT.
type receiver struct {
	subMchID, typ, account   string
	name                     string // decrypted
	relation, custom         string
	state                    string
	left                     int
	partnershipFile, appFile string
}

func receiverKey(subMchID, typ, account string) string { return subMchID + "/" + typ + "/" + account }

// SetReceiver adds or changes a receiver of a sub-merchant directly, in
// any state (e.g. wechatpay.ReceiverEffective), for tests that skip the
// review.
func (s *Server) SetReceiver(subMchID, typ, account, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := receiverKey(subMchID, typ, account)
	if r := s.receivers[k]; r != nil {
		r.state, r.left = state, 0
		return
	}
	s.receivers[k] = &receiver{subMchID: subMchID, typ: typ, account: account, relation: wechatpay.RelationSupplier, state: state}
}

// ApproveReceivers ends the review of every receiver under review
// (INIT): each is EFFECTIVE from now on.
func (s *Server) ApproveReceivers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.receivers {
		if r.state == wechatpay.ReceiverInit {
			r.state, r.left = wechatpay.ReceiverEffective, 0
		}
	}
}

// Receiver returns a receiver's review state and decrypted name, and
// whether it exists.
func (s *Server) Receiver(subMchID, typ, account string) (state, name string, found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.receivers[receiverKey(subMchID, typ, account)]
	if r == nil {
		return "", "", false
	}
	return r.state, r.name, true
}

type wireReceiver struct {
	SubMchID       string `json:"sub_mchid"`
	Type           string `json:"type"`
	Account        string `json:"account"`
	RelationType   string `json:"relation_type,omitempty"`
	CustomRelation string `json:"custom_relation,omitempty"`
	State          string `json:"state,omitempty"`
}

func (r *receiver) view() wireReceiver {
	return wireReceiver{SubMchID: r.subMchID, Type: r.typ, Account: r.account, RelationType: r.relation, CustomRelation: r.custom, State: r.state}
}

// addReceiver adds a receiver INIT (EFFECTIVE at once when ReviewPolls is
// negative). Adding one that is INIT or EFFECTIVE is refused; one whose
// review failed (another state, set by SetReceiver) is added again.
func (s *Server) addReceiver(c call) reply {
	var in struct {
		SubMchID          string `json:"sub_mchid"`
		AppID             string `json:"appid"`
		SubAppID          string `json:"sub_appid"`
		Type              string `json:"type"`
		Account           string `json:"account"`
		Name              string `json:"name"`
		RelationType      string `json:"relation_type"`
		CustomRelation    string `json:"custom_relation"`
		PartnershipFileID string `json:"partnership_file_id"`
		ApplicationFileID string `json:"application_file_id"`
	}
	if a, ok := c.decode(&in); !ok {
		return a
	}
	if a, ok := require([2]string{"sub_mchid", in.SubMchID}, [2]string{"type", in.Type}, [2]string{"account", in.Account},
		[2]string{"relation_type", in.RelationType}); !ok {
		return a
	}
	if a, ok := checkType(in.Type); !ok {
		return a
	}
	switch {
	case !slices.Contains([]string{wechatpay.RelationSupplier, wechatpay.RelationDistributor, wechatpay.RelationTaxServiceProvider,
		wechatpay.RelationITServiceProvider, wechatpay.RelationCustom}, in.RelationType):
		// Published: relation_type is one of these.
		return paramError("unknown relation_type")
	case in.RelationType == wechatpay.RelationCustom && in.CustomRelation == "":
		return paramError("custom_relation is required with relation_type CUSTOM")
	case utf8.RuneCountInString(in.CustomRelation) > wechatpay.MaxCustomRelation:
		// Published: custom_relation is at most 10 characters.
		return paramError(fmt.Sprintf("custom_relation: at most %d characters", wechatpay.MaxCustomRelation))
	case in.Type == wechatpay.TypeMerchantID && in.Name == "":
		return paramError("name is required for a MERCHANT_ID receiver")
	}
	r := &receiver{subMchID: in.SubMchID, typ: in.Type, account: in.Account, relation: in.RelationType, custom: in.CustomRelation,
		state: wechatpay.ReceiverInit, left: s.o.ReviewPolls, partnershipFile: in.PartnershipFileID, appFile: in.ApplicationFileID}
	if in.Name != "" {
		if c.r.Header.Get(wechatpay.HeaderSerial) != s.o.Keys.PlatformSerial {
			return paramError("Wechatpay-Serial does not name the platform key the name is encrypted with")
		}
		name, err := wechatpay.DecryptSensitive(s.o.Keys.PlatformPrivate, in.Name)
		if err != nil {
			return paramError("name: " + err.Error())
		}
		r.name = name
	}
	k := receiverKey(in.SubMchID, in.Type, in.Account)
	if old := s.receivers[k]; old != nil && !wechatpay.ReviewFailed(old.state) {
		// Published: an INIT or EFFECTIVE receiver cannot be added again;
		// one whose review failed is, with new materials.
		return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "the receiver was already added")
	}
	if r.left < 0 {
		r.state, r.left = wechatpay.ReceiverEffective, 0
	}
	s.receivers[k] = r
	return ok(r.view())
}

// receiverResult answers INIT while review polls are left, then EFFECTIVE.
func (s *Server) receiverResult(c call) reply {
	account, sub, typ := strings.TrimPrefix(c.path, "receivers/"), c.query.Get("sub_mchid"), c.query.Get("type")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"type", typ}); !ok {
		return a
	}
	switch {
	case typ == wechatpay.TypePersonalOpenID && c.query.Get("appid") == "":
		return paramError("appid is required for a PERSONAL_OPENID receiver")
	case typ == wechatpay.TypePersonalSubOpenID && c.query.Get("sub_appid") == "":
		return paramError("sub_appid is required for a PERSONAL_SUB_OPENID receiver")
	}
	r := s.receivers[receiverKey(sub, typ, account)]
	if r == nil {
		return notFound("receiver")
	}
	if r.state == wechatpay.ReceiverInit {
		if r.left > 0 {
			r.left--
		} else {
			r.state = wechatpay.ReceiverEffective
		}
	}
	return ok(r.view())
}

func (s *Server) deleteReceiver(c call) reply {
	var in struct {
		SubMchID string `json:"sub_mchid"`
		Type     string `json:"type"`
		Account  string `json:"account"`
	}
	if a, ok := c.decode(&in); !ok {
		return a
	}
	if a, ok := require([2]string{"sub_mchid", in.SubMchID}, [2]string{"type", in.Type}, [2]string{"account", in.Account}); !ok {
		return a
	}
	k := receiverKey(in.SubMchID, in.Type, in.Account)
	if s.receivers[k] == nil {
		return notFound("receiver")
	}
	delete(s.receivers, k)
	return reply{status: http.StatusNoContent} // as published: 204, no body
}

func checkType(typ string) (reply, bool) {
	if !slices.Contains([]string{wechatpay.TypeMerchantID, wechatpay.TypePersonalOpenID, wechatpay.TypePersonalSubOpenID}, typ) {
		return paramError("unknown receiver type"), false
	}
	return reply{}, true
}
