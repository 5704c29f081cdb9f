package paysim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/pipeline"
)

// Currencies are those whose platform balance the paysim command starts
// with (DefaultBalance in each) and the state always shows; SeedDay funds
// the seeded day's other currencies too.
var Currencies = []pipeline.Currency{"CNY", "EUR", "HKD", "JPY", "KWD", "USD"}

// balanceCurrencies returns Currencies and every other currency a platform
// balance was set in (SeedDay, --balance CUR=MINOR).
func (s *Sim) balanceCurrencies() []pipeline.Currency {
	out := slices.Clone(Currencies)
	for _, c := range s.Infinia.BalanceCurrencies() {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// seeded remembers the transactions created at the fakes, for the state.
type seeded struct {
	mu          sync.Mutex
	wechat      []weChatTxn
	payProtocol []string
}

type weChatTxn struct{ sub, id string }

func (s *Sim) trackWeChat(sub, id string) {
	s.seeded.mu.Lock()
	defer s.seeded.mu.Unlock()
	s.seeded.wechat = append(s.seeded.wechat, weChatTxn{sub, id})
}

func (s *Sim) trackPayProtocol(outTradeNo string) {
	s.seeded.mu.Lock()
	defer s.seeded.mu.Unlock()
	s.seeded.payProtocol = append(s.seeded.payProtocol, outTradeNo)
}

// State is what the simulated providers hold, as GET /paysim/state shows
// it: for an operator to compare a trial day with the ledger. Amounts are
// minor units of their currency unless said otherwise.
type State struct {
	Infinia struct {
		Balances      map[pipeline.Currency]int64 `json:"balances"`
		RevenueShares []RevenueShare              `json:"revenue_shares"`
		Files         []File                      `json:"files"` // trade files received by SFTP
	} `json:"infinia"`
	WeChat struct {
		Transactions []WeChatTransaction `json:"transactions"`
	} `json:"wechat"`
	PayProtocol struct {
		Payments []PayProtocolPayment `json:"payments"`
		Refunds  []PayProtocolRefund  `json:"refunds"`
	} `json:"payprotocol"`
	// Requests counts what each provider was asked and the 429s it gave.
	Requests Requests `json:"requests"`
}

// RevenueShare is one revenue-sharing request Infinia received.
type RevenueShare struct {
	RequestNo   string            `json:"request_no"`
	SellerID    string            `json:"seller_id"`
	Currency    pipeline.Currency `json:"currency"`
	AmountMinor int64             `json:"amount_minor"`
	Status      string            `json:"status"`
	Reference   string            `json:"reference,omitempty"`
	FailReason  string            `json:"fail_reason,omitempty"`
}

// File is a trade-detail file in the SFTP server's upload directory.
type File struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// WeChatTransaction is a payment transaction at the simulated WeChat Pay
// and what became of its frozen funds.
type WeChatTransaction struct {
	TransactionID    string `json:"transaction_id"`
	SubMchID         string `json:"sub_mchid"`
	FrozenMinor      int64  `json:"frozen_minor"`      // still to distribute
	DistributedMinor int64  `json:"distributed_minor"` // paid to receivers (the platform)
	UnfrozenMinor    int64  `json:"unfrozen_minor"`    // released to the seller
	Requests         int    `json:"requests"`          // distribution and unfreeze requests accepted
}

// PayProtocolPayment is a payment at the simulated Pay Protocol. Amounts
// are the crypto currency's scaled integers, the quote a decimal string in
// major units of the order's currency.
type PayProtocolPayment struct {
	OutTradeNo         string `json:"out_trade_no"`
	Status             string `json:"status"`
	QuoteCurrency      string `json:"quote_currency"`
	QuoteAmount        string `json:"quote_amount"`
	ExpectedAmount     string `json:"expected_amount"`
	SettlementAmount   string `json:"settlement_amount"`
	SettlementCurrency string `json:"settlement_currency"`
}

// PayProtocolRefund is a refund order at the simulated Pay Protocol.
type PayProtocolRefund struct {
	RefundID   string `json:"refund_id"`
	OutTradeNo string `json:"out_trade_no"`
	Status     string `json:"status"`
	Amount     string `json:"amount"`
}

// State returns what the fakes hold now.
func (s *Sim) State() State {
	var st State
	st.Infinia.Balances = map[pipeline.Currency]int64{}
	for _, c := range s.balanceCurrencies() {
		st.Infinia.Balances[c] = s.Infinia.Balance(c)
	}
	st.Infinia.RevenueShares = []RevenueShare{}
	for _, r := range s.Infinia.RevenueShares() {
		st.Infinia.RevenueShares = append(st.Infinia.RevenueShares, RevenueShare{RequestNo: r.RequestNo, SellerID: r.SellerID,
			Currency: r.Currency, AmountMinor: r.Amount, Status: r.Status, Reference: r.Reference, FailReason: r.FailReason})
	}
	st.Infinia.Files = []File{}
	entries, _ := os.ReadDir(filepath.Join(s.sftpRoot, "upload"))
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			st.Infinia.Files = append(st.Infinia.Files, File{Name: e.Name(), Bytes: info.Size()})
		}
	}
	s.seeded.mu.Lock()
	wx, pp := append([]weChatTxn(nil), s.seeded.wechat...), append([]string(nil), s.seeded.payProtocol...)
	s.seeded.mu.Unlock()
	st.WeChat.Transactions = []WeChatTransaction{}
	for _, t := range wx {
		st.WeChat.Transactions = append(st.WeChat.Transactions, WeChatTransaction{TransactionID: t.id, SubMchID: t.sub,
			FrozenMinor: s.WeChat.Frozen(t.id), DistributedMinor: s.WeChat.Distributed(t.id), UnfrozenMinor: s.WeChat.Unfrozen(t.id),
			Requests: s.WeChat.Requests(t.id)})
	}
	st.PayProtocol.Payments = []PayProtocolPayment{}
	for _, no := range pp {
		p, ok := s.PayProtocol.Payment(no)
		if !ok {
			continue
		}
		st.PayProtocol.Payments = append(st.PayProtocol.Payments, PayProtocolPayment{OutTradeNo: no, Status: p.Status.String(),
			QuoteCurrency: p.QuoteCurrency, QuoteAmount: p.QuoteAmount, ExpectedAmount: p.ExpectedAmount,
			SettlementAmount: p.SettlementAmount, SettlementCurrency: p.SettlementCurrency})
	}
	st.PayProtocol.Refunds = []PayProtocolRefund{}
	for _, r := range s.PayProtocol.Refunds() {
		amount := ""
		if r.Amount != nil {
			amount = r.Amount.String()
		}
		st.PayProtocol.Refunds = append(st.PayProtocol.Refunds, PayProtocolRefund{RefundID: r.RefundID, OutTradeNo: r.OutTradeNo,
			Status: r.Status.String(), Amount: amount})
	}
	st.Requests = s.Requests()
	return st
}

// serveState answers GET /paysim/state with State as JSON.
func (s *Sim) serveState(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.State()) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// StateURL is where the simulator shows its state.
func (s *Sim) StateURL() string { return httpBase(s.ln) + "/paysim/state" }

// Day is what SeedDay created for a seeded day.
type Day struct {
	PayProtocol int // payments created at Pay Protocol
	WeChat      int // transactions created at WeChat Pay
	// Duplicates are provider transaction ids that several of the day's
	// orders share (a seeded bad row): created once, the job rejects the
	// duplicated orders.
	Duplicates []string
	// Funded are the currencies of the day's Infinia-paid orders
	// (infiniapay, payprotocol) outside Currencies in which no platform
	// balance was set: SeedDay gives the platform DefaultBalance in each,
	// so that a trial day in EGP, say, is paid as one in CNY is.
	Funded []pipeline.Currency
}

// SeedDay creates the providers' side of the platform's orders confirmed in
// w (query is the source query, with $1 and $2 the window): Pay Protocol's
// payments and WeChat Pay's transactions.
func (s *Sim) SeedDay(ctx context.Context, db *sqlx.DB, query string, w pipeline.Window) (Day, error) {
	var d Day
	err := db.SelectContext(ctx, &d.Duplicates, `SELECT provider_txn_id FROM (`+query+`) q
		WHERE provider IN ('payprotocol', 'wechatpay') AND provider_txn_id IS NOT NULL
		GROUP BY provider_txn_id HAVING count(*) > 1`, w.Start, w.End)
	if err != nil {
		return d, fmt.Errorf("read the day's orders: %w", err)
	}
	sort.Strings(d.Duplicates)
	var curs []string
	if err := db.SelectContext(ctx, &curs, `SELECT DISTINCT currency FROM (`+query+`) q
		WHERE provider IN ('infiniapay', 'payprotocol') AND currency IS NOT NULL ORDER BY currency`, w.Start, w.End); err != nil {
		return d, fmt.Errorf("read the day's currencies: %w", err)
	}
	for _, cur := range curs {
		if c := pipeline.Currency(cur); c.Valid() && !slices.Contains(s.balanceCurrencies(), c) {
			s.Infinia.SetBalance(c, DefaultBalance)
			d.Funded = append(d.Funded, c)
		}
	}
	if d.PayProtocol, err = s.SeedPayProtocol(ctx, db, query, w); err != nil {
		return d, fmt.Errorf("create the Pay Protocol payments: %w", err)
	}
	if d.WeChat, err = s.SeedWeChat(ctx, db, query, w); err != nil {
		return d, fmt.Errorf("create the WeChat transactions: %w", err)
	}
	return d, nil
}
