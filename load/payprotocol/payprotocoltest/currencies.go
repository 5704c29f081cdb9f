package payprotocoltest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// currency is one of the merchant's currencies on a chain, as the currency
// list publishes it.
type currency struct {
	id       int
	chainID  int
	symbol   string
	decimals int
	created  time.Time
}

type currencyKey struct {
	chain  int
	symbol string
}

// openCurrency opens symbol on chain with decimals, as the merchant does
// on Pay Protocol's console, and returns it; one open already is returned
// as it is (its decimals unchanged). The caller holds s.mu.
func (s *Server) openCurrency(chain int, symbol string, decimals int) *currency {
	k := currencyKey{chain, symbol}
	if c := s.currencyBy[k]; c != nil {
		return c
	}
	s.currencySeq++
	c := &currency{id: s.currencySeq, chainID: chain, symbol: symbol, decimals: decimals, created: s.o.Now()}
	s.currencyBy[k] = c
	s.opened = append(s.opened, c)
	return c
}

// AddCurrency opens a currency on a chain (say TRX, 6 decimals, on chain
// 1), as the merchant does on Pay Protocol's console, and returns its
// currencyId; one open already keeps its id and decimals. The fake opens
// Options.Coin on chains 1 to 3 at its start (currencyId 1 to 3), and
// every currency a payment is made in on its chain.
func (s *Server) AddCurrency(chainID int, symbol string, decimals int) (int, error) {
	if chainID <= 0 || symbol == "" || decimals < 0 || decimals > payprotocol.MaxDecimals {
		return 0, fmt.Errorf("payprotocoltest: AddCurrency(%d, %q, %d): want a chain, a symbol and decimals from 0 to %d", chainID, symbol, decimals, payprotocol.MaxDecimals)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openCurrency(chainID, symbol, decimals).id, nil
}

// CurrencyID returns the currencyId of symbol on chainID, and whether the
// merchant opened it.
func (s *Server) CurrencyID(chainID int, symbol string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.currencyBy[currencyKey{chainID, symbol}]
	if c == nil {
		return 0, false
	}
	return c.id, true
}

// SetRefundCurrency makes a refund answer, from now on, in the currency
// currencyID (its detail, its entry in the refund list and its callback),
// whatever its payment was settled in: a refund in another currency than
// its payment, which Pay Protocol's console lets an approver make. Any id
// is taken, one the currency list does not have too.
func (s *Server) SetRefundCurrency(refundID string, currencyID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[refundID]
	if rf == nil {
		return fmt.Errorf("payprotocoltest: no refund %s", refundID)
	}
	rf.currencyID = currencyID
	return nil
}

// currencyList answers GET /conf/list/currency?chainId=...: the currencies
// the merchant opened on the chain, in the order they were opened, with
// the published fields (currencyId, chainId, name, symbol, address,
// decimals, createTime written as in the published example, icon,
// exchangeRate). Without chainId, those of every chain (not published:
// assumed; settle always sends it).
func (s *Server) currencyList(r request) reply {
	chain := 0
	if v := r.query.Get("chainId"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > math.MaxInt32 {
			return refuse(payprotocol.CodeBadRequest, "invalid parameter: chainId")
		}
		chain = n
	}
	list := []map[string]any{}
	for _, c := range s.opened {
		if chain != 0 && c.chainID != chain {
			continue
		}
		list = append(list, map[string]any{"currencyId": c.id, "chainId": c.chainID, "name": c.symbol,
			"symbol": c.symbol, "address": "0x" + strings.Repeat(strconv.Itoa(c.id%10), 40), "decimals": c.decimals,
			"createTime": c.created.UTC().Format(time.DateTime), "icon": "data:image/webp;base64,UklGRg==", "exchangeRate": "1"})
	}
	return success(list)
}
