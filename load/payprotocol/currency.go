package payprotocol

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// APICurrencyList is "Query currency list", GET /conf/list/currency?chainId=
// (doc.payprotocol.network/docs/api/merchant/get-currency-list): the
// currencies the merchant opened on a chain, each with its currencyId,
// symbol and decimals. A refund names its currency by currencyId alone;
// this list says which symbol, and how many decimals, that is.
const APICurrencyList = "conf/list/currency"

// Currency is one of the merchant's currencies on a chain, as the currency
// list publishes it (its icon and exchange rate left out).
type Currency struct {
	ID       int    // currencyId
	ChainID  int    // chainId, Pay Protocol's internal chain id
	Symbol   string // symbol ("USDT"), as settlementCurrencySymbol names it
	Name     string // name ("Tether USD")
	Address  string // the token's contract address
	Decimals int    // decimals: refund and payment amounts are scaled by 10^Decimals
}

// wireCurrency is an entry of the currency list, by its published names;
// numbers are also accepted written as strings, as in the other answers.
type wireCurrency struct {
	CurrencyID *flexInt `json:"currencyId"`
	ChainID    *flexInt `json:"chainId"`
	Name       string   `json:"name"`
	Symbol     string   `json:"symbol"`
	Address    string   `json:"address"`
	Decimals   *flexInt `json:"decimals"`
}

// CurrencyList returns the merchant's currencies on chainID: GET
// /conf/list/currency?chainId=... . Every entry must be of that chain,
// with a currencyId above 0 that no other entry has, a symbol, and
// decimals from 0 to MaxDecimals; otherwise the whole answer is refused
// (ErrAnswer): a refund's currency is looked up in it, and a list that
// cannot be trusted whole says nothing of any. Retried on transient
// failures, like every query. Currencies keeps what it answers.
func (c *Client) CurrencyList(ctx context.Context, chainID int) ([]Currency, error) {
	sp := spec{api: APICurrencyList, method: http.MethodGet, query: query("chainId", strconv.Itoa(chainID))}
	if chainID <= 0 {
		return nil, sp.fail(failLocal, fmt.Errorf("chainId %d: want > 0", chainID))
	}
	var w []wireCurrency
	if err := c.call(ctx, sp, nil, &w); err != nil {
		return nil, err
	}
	out := make([]Currency, 0, len(w))
	seen := map[int]bool{}
	for i, e := range w {
		bad := func(why string) ([]Currency, error) {
			return nil, sp.fail(failBadAnswer, fmt.Errorf("%w: chain %d: entry %d: %s", ErrAnswer, chainID, i+1, why))
		}
		switch {
		case e.CurrencyID == nil || *e.CurrencyID <= 0:
			return bad("missing or invalid currencyId")
		case seen[int(*e.CurrencyID)]:
			return bad(fmt.Sprintf("currencyId %d listed twice", int(*e.CurrencyID)))
		case e.ChainID == nil || int(*e.ChainID) != chainID:
			return bad(fmt.Sprintf("currency %d is not of chain %d", int(*e.CurrencyID), chainID))
		case e.Symbol == "" || strings.TrimSpace(e.Symbol) != e.Symbol:
			return bad(fmt.Sprintf("currency %d: missing or invalid symbol %q", int(*e.CurrencyID), clip(e.Symbol)))
		case e.Decimals == nil || *e.Decimals < 0 || *e.Decimals > MaxDecimals:
			return bad(fmt.Sprintf("currency %d (%s): missing decimals, or outside 0..%d", int(*e.CurrencyID), clip(e.Symbol), MaxDecimals))
		}
		seen[int(*e.CurrencyID)] = true
		out = append(out, Currency{ID: int(*e.CurrencyID), ChainID: chainID, Symbol: e.Symbol, Name: e.Name, Address: e.Address, Decimals: int(*e.Decimals)})
	}
	return out, nil
}

// currencyLists keeps a Client's currency lists, one per chain, each read
// once (Client.Currencies).
type currencyLists struct {
	mu     sync.Mutex
	chains map[int]*currencyRead
}

// currencyRead is one chain's reading of the list: done is closed once
// list or err is set.
type currencyRead struct {
	done chan struct{}
	list []Currency
	err  error
}

// Currencies returns the merchant's currencies on chainID (CurrencyList),
// read once per chain for the client's life (a run's process): the
// verification and the reconciliation of a run ask each chain's list once,
// however many refunds they read, and concurrent callers wait for the one
// request. Its failure is kept too when it is Pay Protocol's (no answer
// past the client's retries, or an answer that cannot be used): the
// payments whose refunds need the list then wait for the next run,
// without asking again, with its retries, for each. Refused credentials
// and a cancelled context are not kept: they are returned, and the next
// caller asks.
func (c *Client) Currencies(ctx context.Context, chainID int) ([]Currency, error) {
	for {
		c.currencies.mu.Lock()
		if c.currencies.chains == nil {
			c.currencies.chains = map[int]*currencyRead{}
		}
		r := c.currencies.chains[chainID]
		if r == nil {
			r = &currencyRead{done: make(chan struct{})}
			c.currencies.chains[chainID] = r
			c.currencies.mu.Unlock()
			r.list, r.err = c.CurrencyList(ctx, chainID)
			if r.err != nil && (ctx.Err() != nil || pipeline.KindOf(r.err) != pipeline.KindFailed) {
				c.currencies.mu.Lock()
				delete(c.currencies.chains, chainID) // not kept: the next caller asks
				c.currencies.mu.Unlock()
			}
			close(r.done)
			return r.list, r.err
		}
		c.currencies.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.currencies.mu.Lock()
		kept := c.currencies.chains[chainID] == r
		c.currencies.mu.Unlock()
		if kept || r.err == nil {
			return r.list, r.err
		}
		// Its reader's context ended, or its credentials were refused:
		// ask for ourselves.
	}
}
