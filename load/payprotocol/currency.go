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
	// Problem says why the list's entry of this currency cannot be used
	// (another chain's, its id listed twice, decimals missing or out of
	// range), its Decimals then 0; "" when it can. Only the refunds it may concern wait for it
	// (Adapter's currencyOf): those in this currency, and those whose
	// payment was settled in its symbol, of which it may be a namesake.
	Problem string
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
// /conf/list/currency?chainId=... . An entry must have a currencyId above
// 0 and a symbol, or the whole answer is refused (ErrAnswer): a refund's
// currency, and the namesakes of a payment's, are looked up in it, and an
// entry that cannot be told apart from the others says nothing of which
// it is. An entry that can but is not to be trusted otherwise - of
// another chain, its currencyId listed twice, its decimals missing or
// outside 0..MaxDecimals - is returned with its Problem: before, it made
// the whole list unusable, and every payment of the chain with a refund
// waited, exit 1, for as long as Pay Protocol listed it so. Retried on
// transient failures, like every query. Currencies keeps what it answers.
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
	first := map[int]int{} // a currencyId's first entry in out
	for i, e := range w {
		switch {
		case e.CurrencyID == nil || *e.CurrencyID <= 0:
			return nil, sp.fail(failBadAnswer, fmt.Errorf("%w: chain %d: entry %d: missing or invalid currencyId", ErrAnswer, chainID, i+1))
		case e.Symbol == "" || strings.TrimSpace(e.Symbol) != e.Symbol:
			return nil, sp.fail(failBadAnswer, fmt.Errorf("%w: chain %d: entry %d: currency %d: missing or invalid symbol %q", ErrAnswer, chainID, i+1, int(*e.CurrencyID), clip(e.Symbol)))
		}
		cur := Currency{ID: int(*e.CurrencyID), ChainID: chainID, Symbol: e.Symbol, Name: e.Name, Address: e.Address}
		switch j, twice := first[cur.ID]; {
		case twice:
			cur.Problem = fmt.Sprintf("entry %d: currencyId %d listed twice (entries %d and %d)", i+1, cur.ID, j+1, i+1)
			out[j].Problem, out[j].Decimals = cur.Problem, 0
		case e.ChainID == nil || int(*e.ChainID) != chainID:
			cur.Problem = fmt.Sprintf("entry %d: currency %d is not of chain %d", i+1, cur.ID, chainID)
		case e.Decimals == nil || *e.Decimals < 0 || *e.Decimals > MaxDecimals:
			cur.Problem = fmt.Sprintf("entry %d: currency %d (%s): missing decimals, or outside 0..%d", i+1, cur.ID, clip(cur.Symbol), MaxDecimals)
		default:
			cur.Decimals = int(*e.Decimals)
		}
		if _, twice := first[cur.ID]; !twice {
			first[cur.ID] = len(out)
		}
		out = append(out, cur)
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
