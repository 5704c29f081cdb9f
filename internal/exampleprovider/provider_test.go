// Package exampleprovider is a toy fourth provider, "Ledger Transfer",
// written from README "Adding a provider" and the doc comments of
// pipeline alone, and driven through the real effect engine, Runner and
// ledger (contract_test.go). It is test code only: it proves that the
// plug-in contract is what the docs say, and fails when it changes.
//
// This file is the provider as load/<name> would hold it: it imports
// pipeline and the standard library alone (TestTheToyImportsOnlyThePipeline).
// Ledger Transfer moves money between wallets of one ledger: POST
// /transfers under an idempotency key (the same key answers the same
// transfer, never a second one), GET /transfers/{key} its status
// (PROCESSING, SUCCEEDED, FAILED; 404 for a key never received) and GET
// /transfers?date= the day's, for reconcile.
package exampleprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Name names the provider in summaries, logs and mismatches.
const Name = "Ledger Transfer"

// Channel is its channel: the source's provider column.
const Channel pipeline.Channel = "ledgertransfer"

// KindTransfer is its one money effect kind: a name no other provider's
// kinds take (the ledger keys effects by kind and subject).
const KindTransfer = "lt_transfer"

// SellerAccount is the key of a seller's wallet in Seller.Accounts.
const SellerAccount = "ledgertransfer"

// ChannelSpec is what the core knows of Channel.
func ChannelSpec() pipeline.ChannelSpec {
	return pipeline.ChannelSpec{Channel: Channel, Account: SellerAccount, AccountName: "Ledger Transfer wallet", OneSellerAnAccount: true}
}

// Subject is the subject of the transfer of date d to wallet in cur;
// Key its attempt's idempotency key. Keys share one namespace with every
// other provider's in the ledger: the "LT" prefix keeps them apart.
func Subject(d pipeline.Date, wallet string, cur pipeline.Currency) string {
	return fmt.Sprintf("LT/%04d%02d%02d/%s/%s", d.Year, d.Month, d.Day, wallet, cur)
}

// Key is the idempotency key of attempt of subject.
func Key(subject string, attempt int) string {
	return "LT" + pipeline.ShortHash(subject, fmt.Sprint(attempt))
}

func walletOf(subject string) string {
	parts := strings.Split(subject, "/")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// ---- client -----------------------------------------------------------

// Client talks to Ledger Transfer.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// Transfer is Ledger Transfer's record of one transfer.
type Transfer struct {
	Key      string `json:"key"`
	To       string `json:"to"`
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	Date     string `json:"date"`
	Status   string `json:"status"` // PROCESSING, SUCCEEDED, FAILED
	Ref      string `json:"ref"`
	Reason   string `json:"reason,omitempty"`
}

// errNotFound is a 404 of the status query.
var errNotFound = errors.New("transfer not found")

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// No answer came back: the request may or may not have been
		// applied (ErrNoAnswer counts towards the breaker).
		return pipeline.NoAnswer(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return pipeline.NoAnswer(err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode == http.StatusUnauthorized:
		return pipeline.Errorf(pipeline.KindUsage, "ledger transfer", "credentials refused: %s", b)
	case resp.StatusCode == http.StatusForbidden:
		// It refuses to tell about this one: the subject's alone.
		return fmt.Errorf("%s %s: %s: %w", method, path, bytes.TrimSpace(b), pipeline.ErrRefused)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// Ping is the pre-flight: one cheap authenticated call.
func (c *Client) Ping(ctx context.Context) error {
	var v struct{}
	return c.do(ctx, http.MethodGet, "/ping", nil, &v)
}

// ---- sender (pipeline.EffectSender) ------------------------------------

// Sender sends and asks about KindTransfer effects.
type Sender struct {
	Client *Client
	Date   pipeline.Date
}

func outcome(t Transfer) pipeline.Outcome {
	switch t.Status {
	case "SUCCEEDED":
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: t.Ref}
	case "FAILED":
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Ref: t.Ref, Reason: t.Reason}
	default:
		return pipeline.Outcome{Status: pipeline.OutcomePending, Ref: t.Ref}
	}
}

// Send makes the transfer under e.Key. An error is an unknown outcome.
func (s Sender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	var t Transfer
	err := s.Client.do(ctx, http.MethodPost, "/transfers", Transfer{Key: e.Key, To: walletOf(e.Subject), Currency: string(e.Currency),
		Amount: e.Amount, Date: s.Date.String()}, &t)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if t.Key != e.Key || t.Amount != e.Amount || t.Currency != string(e.Currency) {
		// The key answers another transfer than ours: never adopted.
		return pipeline.Outcome{}, fmt.Errorf("transfer %s: answered for %s %d %s: %w", e.Key, t.Key, t.Amount, t.Currency, pipeline.ErrRefused)
	}
	return outcome(t), nil
}

// Query asks about e.Key.
func (s Sender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	var t Transfer
	err := s.Client.do(ctx, http.MethodGet, "/transfers/"+url.PathEscape(e.Key), nil, &t)
	if errors.Is(err, errNotFound) {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
	}
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return outcome(t), nil
}

// ---- the distribute stage ------------------------------------------------

// Store is what the stage and the matcher need of the ledger
// (*ledger.Ledger implements it).
type Store interface {
	pipeline.EffectStore
	LatestEffect(ctx context.Context, kind, subject string) (pipeline.Effect, bool, error)
	OpenEffectsAfter(ctx context.Context, runID int64, kind string, after int64, n int) ([]pipeline.Effect, error)
	EffectsOfKind(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error)
}

// Payout is one wallet's money of a run.
type Payout struct {
	Wallet string
	Amount pipeline.Money
}

// Config is Ledger Transfer as configured for a run.
type Config struct {
	Client *Client
	Store  Store
	Pacer  *pipeline.Pacer
	// Payouts returns what the run pays (from the ledger's items, in a
	// real provider).
	Payouts               func(ctx context.Context, run *pipeline.Run) ([]Payout, error)
	Wait, FirstPoll, Poll time.Duration
}

// NewProvider returns Ledger Transfer as a provider of a run.
func NewProvider(c Config) pipeline.Provider {
	return pipeline.Provider{
		Name:       Name,
		Settles:    []pipeline.Channel{Channel},
		Pays:       []string{KindTransfer},
		Preflight:  c.Client.Ping,
		Distribute: DistributeStage(c),
		Matchers:   []pipeline.Matcher{Matcher(c)},
	}
}

// DistributeStage plans one transfer per payout, intent first, and
// drives every one of the run not final on the effect engine.
func DistributeStage(c Config) pipeline.StageFunc {
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		ctx = pipeline.WithBreaker(ctx)
		var (
			mu         sync.Mutex
			problems   pipeline.Problems
			paid, sent int
		)
		problem := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			problems.Add(fmt.Sprintf(format, args...))
		}
		payouts, err := c.Payouts(ctx, run)
		if err != nil {
			return "", err
		}
		// 1. Intent first: every transfer recorded planned before any
		// is sent. A failed one stays failed (a toy makes no new
		// attempt): a person is told.
		for _, p := range payouts {
			subject := Subject(run.Key.Date, p.Wallet, p.Amount.Currency)
			e, ok, err := c.Store.LatestEffect(ctx, KindTransfer, subject)
			if err != nil {
				return "", err
			}
			if !ok {
				e, err = c.Store.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: KindTransfer, Subject: subject, Attempt: 1,
					Key: Key(subject, 1), Currency: p.Amount.Currency, Amount: p.Amount.Minor})
				if errors.Is(err, pipeline.ErrKeyTaken) {
					problem("%s: %v", subject, err)
					continue
				}
				if err != nil {
					return "", err
				}
			}
			if e.State == pipeline.EffectFailed {
				problem("transfer %s to %s failed: %s", e.Key, p.Wallet, e.LastError)
			}
		}
		// 2. The engine drives whatever is not final: this run's new
		// intents, and what a run that stopped left planned, sent or
		// unknown (the ledger is the queue).
		en := &pipeline.Engine{Store: c.Store, Pacer: c.Pacer, Wait: c.Wait, FirstPoll: c.FirstPoll, Poll: c.Poll,
			Sender: func(pipeline.Effect) pipeline.EffectSender { return Sender{Client: c.Client, Date: run.Key.Date} },
			Final: func(ctx context.Context, e pipeline.Effect) error {
				if e.State == pipeline.EffectSucceeded {
					mu.Lock()
					paid++
					mu.Unlock()
					return nil
				}
				problem("transfer %s to %s failed: %s", e.Key, walletOf(e.Subject), e.LastError)
				return nil
			},
			Error: func(ctx context.Context, e pipeline.Effect, err error) error {
				if pipeline.SubjectOnly(err) {
					problem("transfer %s to %s: %v", e.Key, walletOf(e.Subject), err)
					return nil
				}
				return err
			},
		}
		var after int64
		res, err := en.RunFeed(ctx, func(ctx context.Context) ([]pipeline.Effect, error) {
			page, err := c.Store.OpenEffectsAfter(ctx, run.ID, KindTransfer, after, 500)
			if len(page) > 0 {
				after = page[len(page)-1].ID
			}
			return page, err
		})
		sent = res.Sent
		summary := fmt.Sprintf("%d transfers paid (%d requests sent)", paid, sent)
		if err != nil {
			return summary, err
		}
		if err := res.StillProcessing("transfers", Name, c.Wait); err != nil {
			return summary, err
		}
		return summary, problems.NeedsPerson()
	}
}

// ---- the matcher ------------------------------------------------------------

// Matcher compares Ledger Transfer's transfers of the run's date with the
// run's effects.
func Matcher(c Config) pipeline.Matcher {
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		var theirs []Transfer
		if err := c.Client.do(ctx, http.MethodGet, "/transfers?date="+run.Key.Date.String(), nil, &theirs); err != nil {
			return nil, fmt.Errorf("%s: list transfers: %w", Name, err)
		}
		ours, err := c.Store.EffectsOfKind(ctx, run.ID, KindTransfer)
		if err != nil {
			return nil, err
		}
		byKey := map[string]Transfer{}
		for _, t := range theirs {
			byKey[t.Key] = t
		}
		var ms []pipeline.Mismatch
		mismatch := func(cat string, e pipeline.Effect, t Transfer, detail string) {
			ms = append(ms, pipeline.Mismatch{Provider: Name, Category: cat, Subject: e.Key, SellerID: walletOf(e.Subject),
				Currency: string(e.Currency), Ours: pipeline.Minor(e.Amount), Theirs: pipeline.Minor(t.Amount),
				OursState: string(e.State), TheirsState: t.Status, Detail: detail})
		}
		for _, e := range ours {
			t, ok := byKey[e.Key]
			delete(byKey, e.Key)
			switch {
			case !ok && e.State == pipeline.EffectSucceeded:
				ms = append(ms, pipeline.Mismatch{Provider: Name, Category: pipeline.MismatchMissingAtProvider, Subject: e.Key,
					SellerID: walletOf(e.Subject), Currency: string(e.Currency), Ours: pipeline.Minor(e.Amount), OursState: string(e.State)})
			case !ok:
			case t.Amount != e.Amount:
				mismatch(pipeline.MismatchAmount, e, t, "")
			case t.Currency != string(e.Currency):
				mismatch(pipeline.MismatchCurrency, e, t, "")
			case outcome(t).Status == pipeline.OutcomeSucceeded && e.State != pipeline.EffectSucceeded,
				outcome(t).Status == pipeline.OutcomeFailed && e.State != pipeline.EffectFailed:
				mismatch(pipeline.MismatchStatus, e, t, "")
			}
		}
		for _, t := range byKey {
			ms = append(ms, pipeline.Mismatch{Provider: Name, Category: pipeline.MismatchMissingInLedger, Subject: t.Key, SellerID: t.To,
				Currency: t.Currency, Theirs: pipeline.Minor(t.Amount), TheirsState: t.Status})
		}
		return ms, nil
	}
}
