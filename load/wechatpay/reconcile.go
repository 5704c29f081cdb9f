package wechatpay

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// clockMargin widens the window in which the ledger looks for the
// distributions WeChat Pay may have accepted on a day, for the clocks of
// the ledger's database and of WeChat Pay, which are not the same.
const clockMargin = 10 * time.Minute

// expected returns what the attempt's line at WeChat should move (minor
// units): the commission to the platform's receiver for a distribution,
// the seller's share for an unfreeze.
func expected(a pipeline.Attempt) int64 {
	if a.Kind == KindUnfreeze {
		return a.Item.SellerShare
	}
	return a.Amount
}

// OrderStatus is WeChat Pay's word on one distribution or unfreeze.
type OrderStatus struct {
	State      string    // StateProcessing or StateFinished
	AcceptedAt time.Time // when WeChat Pay accepted the request (its create_time); zero when it did not say
	Lines      []OrderLine
}

// OrderLine is one receiver line of a OrderStatus.
type OrderLine struct {
	Platform   bool   // the line pays the platform's receiver (else another receiver, or the seller for an unfreeze)
	Result     string // ResultPending, ResultSuccess or ResultClosed
	FailReason string // with ResultClosed
	Amount     int64  // minor units
}

// BillEntry is one line of a sub-merchant's funds-distribution bill.
type BillEntry struct {
	Time          time.Time
	TransactionID string
	OutOrderNo    string
	Type          string // BillDistribution or BillUnfreeze
	Platform      bool   // the line pays the platform's receiver
	Currency      pipeline.Currency
	Amount        int64 // minor units
}

// SettlementDetail is one fund settlement detail (batch) of a sub-merchant.
type SettlementDetail struct {
	BatchNo  string
	State    string // SettleStateSettled or SettleStateUnsettled
	Currency pipeline.Currency
	Amount   int64 // minor units
}

// Reconciler is what the WeChat matcher needs of WeChat Pay Global.
// Days are Beijing days. The adapter reads bills and settlement details in
// their published shapes, mapping what the published pages leave open
// under the assumptions of its package (see the README).
type Reconciler interface {
	// Order returns WeChat Pay's word on the distribution or unfreeze
	// outOrderNo of a transaction at a sub-merchant; an error wrapping
	// ErrNotFound when WeChat Pay does not know it.
	Order(ctx context.Context, subMchID, transactionID, outOrderNo string) (OrderStatus, error)
	// BillLines returns the sub-merchant's distribution bill of a day that
	// is over: every successful line of the orders accepted that day.
	BillLines(ctx context.Context, subMchID string, day pipeline.Date) ([]BillEntry, error)
	// Settlements returns the sub-merchant's fund settlement details of a
	// trade day, SETTLED and UNSETTLE, each holding what was distributed to
	// receivers that day in one currency (assumed, as in the fake).
	Settlements(ctx context.Context, subMchID string, day pipeline.Date) ([]SettlementDetail, error)
}

// ReconcileStore is what the WeChat matcher needs of the ledger.
type ReconcileStore interface {
	// WeChatItems returns the run's items of channel ch, whatever their
	// state, each with its seller's sub-merchant as the run recorded it
	// (Account; "" when none).
	WeChatItems(ctx context.Context, runID int64, ch pipeline.Channel) ([]pipeline.ChannelItem, error)
	// WeChatAttempts returns every attempt of one of kinds at the run's
	// items of channel ch that may have been sent (state sent, unknown,
	// succeeded or failed), from any run of the date; the item's Account is
	// the sub-merchant it was sent to.
	WeChatAttempts(ctx context.Context, runID int64, ch pipeline.Channel, kinds []string) ([]pipeline.Attempt, error)
	// WeChatDistributed returns the succeeded effects of kind with a
	// positive amount - of any run and any date - sent to one of the sub-merchants
	// whose life in the ledger (from Planned to Recorded) overlaps
	// [from, to): every one WeChat Pay may have accepted in that interval.
	WeChatDistributed(ctx context.Context, kind string, subMchIDs []string, from, to time.Time) ([]pipeline.Attempt, error)
}

// MatcherConfig configures the matcher.
type MatcherConfig struct {
	Store ReconcileStore
	API   Reconciler
	// Pacer keeps the matcher's queries to WeChat Pay's limits: the
	// service provider's bucket, and one per sub-merchant (its lanes are
	// sub-merchant ids); the distribute stage's, so that the limit is
	// shared. nil: no limit but pipeline.DefaultMaxInFlight in flight.
	Pacer *pipeline.Pacer
	// Final keeps the attempts whose order WeChat Pay answered FINISHED in
	// agreement with the ledger's final state, so that a later
	// reconciliation of the date does not ask them again; nil: every
	// attempt is asked every time.
	Final pipeline.FinalAnswers
	// Now is the clock: it tells whether a day is over in Beijing.
	Now func() time.Time
}

// FinalAnswersName names the matcher's order answers in
// pipeline.FinalAnswers.
const FinalAnswersName = Name + "/orders"

// Matcher compares the ledger's view of a run's WeChat work with
// WeChat Pay's, in three ways, and returns every disagreement (Provider
// "wechatpay"; the caller sorts them):
//
//  1. Each distribution and unfreeze attempt of the run's items is queried
//     by its out_order_no. Unknown to WeChat while the ledger says
//     succeeded: missing_at_provider (while sent or unknown: status, a
//     re-run sends it). Still PROCESSING, or the line PENDING: timing,
//     expected. FINISHED: the line - the platform's receiver for a
//     distribution, the seller's for an unfreeze - CLOSED while ours
//     succeeded, or SUCCESS while ours failed or is still open: status;
//     SUCCESS with another amount than the commission (distribution) or
//     the seller's share (unfreeze): amount.
//  2. For each sub-merchant of the run's items and each Beijing day on
//     which WeChat accepted one of the run's attempts (the ledger's time
//     of the answer for an attempt WeChat no longer knows), the day's
//     distribution bill, once the day is over in Beijing (before: one
//     expected timing row, the bill is not out). A line on one of the
//     run's transactions whose out_order_no is no succeeded attempt of
//     ours, or which pays a receiver the attempt did not ask for:
//     missing_in_ledger; a succeeded attempt WeChat accepted that day with
//     no line: missing_at_provider; another currency or amount: currency,
//     amount. A distribution's UNFREEZE line (the rest released with
//     unfreeze_unsplit) is not compared: the ledger does not record it.
//  3. For the same sub-merchants and days, the fund settlement details:
//     assumed to be one batch per sub-merchant, Beijing day and currency
//     holding what was distributed to receivers that day (as the fake
//     does; the layout is not public). Their total is compared with the
//     ledger's: every succeeded distribution of any run and date at that
//     sub-merchant that WeChat accepted that day (each one's time asked of
//     WeChat Pay). Nothing at WeChat while we distributed:
//     missing_at_provider. A batch still UNSETTLE: timing, expected - unless
//     WeChat holds less than the ledger distributed, which no delay
//     explains (amount). All SETTLED with another total: amount. It
//     assumes settle is the only one distributing from these sub-merchants.
//
// Details name no time of now and no request number of ours, so the same
// findings give the same rows. c.Now tells whether a day is over in
// Beijing. An error of WeChat Pay or of the ledger is returned: findings
// are never guessed.
//
// Every query goes out as fast as c.Pacer allows, in the lane of its
// sub-merchant (a bill and the settlement details of a sub-merchant and
// day start as one; the client's own buckets pace each request). An
// attempt whose order WeChat Pay answered FINISHED in agreement with the
// ledger's final state is recorded in c.Final, keyed by its out_order_no,
// sub-merchant, kind, state, currency and amount and the Beijing day WeChat
// accepted it: a later matching of the date does not ask it again (it
// takes that day for checks 2 and 3), unless the ledger's row changed.
// Bills and settlement details are read every time.
func Matcher(c MatcherConfig) pipeline.Matcher {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		m := &matching{store: c.Store, api: c.API, pacer: c.Pacer, final: c.Final, now: c.Now, run: run, txns: map[string]pipeline.ChannelItem{},
			keys: map[string]pipeline.Attempt{}, accepted: map[string]time.Time{}, found: map[string]bool{}, subSeller: map[string]string{}}
		ms, err := m.match(ctx)
		if err == nil && c.Final != nil && len(m.clean) > 0 {
			slices.Sort(m.clean)
			err = c.Final.RecordFinal(ctx, FinalAnswersName, m.clean)
		}
		if err != nil {
			return nil, fmt.Errorf("wechatpay: %w", err)
		}
		return ms, nil
	}
}

// matching is one run's matching.
type matching struct {
	store ReconcileStore
	api   Reconciler
	pacer *pipeline.Pacer
	final pipeline.FinalAnswers // nil: none kept
	now   func() time.Time
	run   *pipeline.Run
	at    time.Time // now, once: every bill of the run is judged out or not at the same moment

	items     []pipeline.ChannelItem
	txns      map[string]pipeline.ChannelItem // transaction id -> item
	subSeller map[string]string               // sub-merchant -> its seller, "" when several
	attempts  []pipeline.Attempt
	keys      map[string]pipeline.Attempt // out_order_no -> the run's attempt

	mu       sync.Mutex
	accepted map[string]time.Time // out_order_no -> when WeChat accepted it (ledger's time when WeChat does not know it)
	found    map[string]bool      // out_order_no -> WeChat knows it
	clean    []string             // final answers of this matching, to record
}

func (m *matching) match(ctx context.Context) ([]pipeline.Mismatch, error) {
	m.at = m.now()
	var err error
	if m.items, err = m.store.WeChatItems(ctx, m.run.ID, Channel); err != nil {
		return nil, err
	}
	if m.attempts, err = m.store.WeChatAttempts(ctx, m.run.ID, Channel, []string{KindDistribution, KindUnfreeze}); err != nil {
		return nil, err
	}
	for _, it := range m.items {
		m.txns[it.TransactionID] = it
		if s, ok := m.subSeller[it.Account]; ok && s != it.SellerID {
			m.subSeller[it.Account] = ""
		} else {
			m.subSeller[it.Account] = it.SellerID
		}
	}
	for _, a := range m.attempts {
		m.keys[a.Key] = a
	}
	out, err := m.orders(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, m.refused()...)
	days := m.days()
	var subs []string
	for sub := range m.subSeller {
		if sub != "" {
			subs = append(subs, sub)
		}
	}
	slices.Sort(subs)
	if len(days) == 0 || len(subs) == 0 {
		return out, nil
	}
	ours, err := m.distributed(ctx, subs, days)
	if err != nil {
		return nil, err
	}
	type subDay struct {
		sub string
		day pipeline.Date
	}
	var pairs []subDay
	for _, d := range days {
		for _, s := range subs {
			pairs = append(pairs, subDay{s, d})
		}
	}
	found := make([][]pipeline.Mismatch, len(pairs))
	err = m.pacer.Each(ctx, len(pairs), func(i int) string { return pairs[i].sub }, func(ctx context.Context, i int) error {
		p := pairs[i]
		bill, err := m.bill(ctx, p.sub, p.day)
		if err != nil {
			return err
		}
		settled, err := m.settlements(ctx, p.sub, p.day, ours[p.sub+"/"+p.day.String()])
		found[i] = append(bill, settled...)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		out = append(out, f...)
	}
	return out, nil
}

// refused reports the items held because WeChat Pay refused them, or
// answered about them what could not be read: a person must look.
func (m *matching) refused() []pipeline.Mismatch {
	var out []pipeline.Mismatch
	for _, it := range m.items {
		reason, held := strings.CutPrefix(it.Reason, "held: ")
		if it.State != pipeline.ItemRecorded || !held || !strings.HasPrefix(reason, refusal) {
			continue
		}
		r := m.row(pipeline.MismatchStatus, "transaction/"+it.TransactionID, it)
		r.OursState, r.TheirsState, r.Detail = it.State, "REFUSED", reason
		out = append(out, r)
	}
	return out
}

// row starts a mismatch about an item.
func (m *matching) row(category, subject string, it pipeline.ChannelItem) pipeline.Mismatch {
	return pipeline.Mismatch{Provider: Name, Category: category, Subject: subject, OrderNo: it.OrderNo, SellerID: it.SellerID,
		Currency: string(it.Currency)}
}

// orders is check 1: every attempt queried by its out_order_no, but
// those whose final answer was kept.
func (m *matching) orders(ctx context.Context) ([]pipeline.Mismatch, error) {
	finals, err := m.finals(ctx, m.attempts)
	if err != nil {
		return nil, err
	}
	found := make([][]pipeline.Mismatch, len(m.attempts))
	var ask []int
	for i, a := range m.attempts {
		day, final := finals[a.Key]
		switch {
		case a.Item.Account == "":
			r := m.attemptRow(pipeline.MismatchStatus, a)
			r.Detail = "no WeChat sub-merchant recorded for the seller: cannot ask WeChat Pay"
			found[i] = []pipeline.Mismatch{r}
		case final:
			m.found[a.Key] = true // FINISHED: WeChat Pay knows it
			m.acceptedOn(a, day)
		default:
			ask = append(ask, i)
		}
	}
	err = m.pacer.Each(ctx, len(ask), func(j int) string { return m.attempts[ask[j]].Item.Account }, func(ctx context.Context, j int) error {
		i := ask[j]
		a := m.attempts[i]
		st, err := m.api.Order(ctx, a.Item.Account, a.Item.TransactionID, a.Key)
		if err != nil && subjectError(err) {
			// WeChat Pay refused the question about this one, or answered
			// what cannot be read: reported, the others are compared.
			r := m.attemptRow(pipeline.MismatchStatus, a)
			r.TheirsState, r.Detail = "REFUSED", refusal+err.Error()
			found[i] = []pipeline.Mismatch{r}
			return nil
		}
		if err != nil && !pipeline.IsNotFound(err) {
			return fmt.Errorf("%s %s of order %s: %w", a.Kind, a.Key, a.Item.OrderNo, err)
		}
		if err != nil {
			m.mu.Lock()
			if a.State == pipeline.EffectSucceeded {
				m.accepted[a.Key] = a.Recorded
			}
			m.mu.Unlock()
			found[i] = m.unknownOrder(a)
			return nil
		}
		found[i] = m.compareOrder(a, st)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.found[a.Key] = true
		switch {
		case !st.AcceptedAt.IsZero():
			m.accepted[a.Key] = st.AcceptedAt
		case a.State == pipeline.EffectSucceeded:
			m.accepted[a.Key] = a.Recorded
		}
		if st.State == StateFinished && len(found[i]) == 0 && (a.State == pipeline.EffectSucceeded || a.State == pipeline.EffectFailed) {
			day := noDay
			if t, ok := m.accepted[a.Key]; ok {
				day = pipeline.DateOf(t.In(Beijing)).String()
			}
			m.clean = append(m.clean, finalKey(a, day))
		}
		return nil
	})
	var out []pipeline.Mismatch
	for _, f := range found {
		out = append(out, f...)
	}
	return out, err
}

// noDay stands in a final key for the day of an order WeChat Pay named no
// time of acceptance for.
const noDay = "-"

// finalKey names a final answer: what was asked (the out_order_no at its
// sub-merchant), what the ledger said then (kind, state, currency and
// amount: a change asks again), and the Beijing day WeChat Pay accepted it
// (noDay when it did not say), which checks 2 and 3 need.
func finalKey(a pipeline.Attempt, day string) string {
	return strings.Join([]string{a.Key, a.Item.Account, a.Kind, string(a.State), string(a.Currency), pipeline.Minor(expected(a)), day}, "|")
}

// finals returns the attempts among as whose final answer was kept, with
// the Beijing day WeChat Pay accepted each (noDay when it did not say).
// WeChat Pay accepts a request after its intent was recorded and before
// its final answer was: only the days of that interval (with clockMargin)
// are looked for.
func (m *matching) finals(ctx context.Context, as []pipeline.Attempt) (map[string]string, error) {
	out := map[string]string{}
	if m.final == nil {
		return out, nil
	}
	type candidate struct{ key, day string }
	var keys []string
	cand := map[string]candidate{}
	for _, a := range as {
		if a.State != pipeline.EffectSucceeded && a.State != pipeline.EffectFailed || a.Item.Account == "" {
			continue
		}
		days := []string{noDay}
		last := pipeline.DateOf(a.Recorded.Add(clockMargin).In(Beijing))
		for d := pipeline.DateOf(a.Planned.Add(-clockMargin).In(Beijing)); !last.Before(d) && len(days) < 8; d = d.AddDays(1) {
			days = append(days, d.String())
		}
		for _, day := range days {
			k := finalKey(a, day)
			keys = append(keys, k)
			cand[k] = candidate{a.Key, day}
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	known, err := m.final.FinalKeys(ctx, FinalAnswersName, keys)
	if err != nil {
		return nil, fmt.Errorf("final answers: %w", err)
	}
	for k, ok := range known {
		if c, mine := cand[k]; ok && mine {
			out[c.key] = c.day
		}
	}
	return out, nil
}

// acceptedOn notes the day WeChat Pay accepted an attempt whose final
// answer was kept (the ledger's time when it named none).
func (m *matching) acceptedOn(a pipeline.Attempt, day string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, err := pipeline.ParseDate(day); err == nil {
		m.accepted[a.Key] = d.Time(Beijing)
	} else if a.State == pipeline.EffectSucceeded {
		m.accepted[a.Key] = a.Recorded
	}
}

func (m *matching) attemptRow(category string, a pipeline.Attempt) pipeline.Mismatch {
	r := m.row(category, a.Key, a.Item)
	r.Currency, r.Ours, r.OursState = string(a.Currency), pipeline.Minor(expected(a)), string(a.State)
	return r
}

// unknownOrder compares an attempt WeChat Pay does not know.
func (m *matching) unknownOrder(a pipeline.Attempt) []pipeline.Mismatch {
	var r pipeline.Mismatch
	switch a.State {
	case pipeline.EffectSucceeded:
		r = m.attemptRow(pipeline.MismatchMissingAtProvider, a)
		r.Detail = fmt.Sprintf("WeChat Pay does not know the %s of transaction %s", a.Kind, a.Item.TransactionID)
	case pipeline.EffectSent, pipeline.EffectUnknown:
		r = m.attemptRow(pipeline.MismatchStatus, a)
		r.Detail = fmt.Sprintf("the %s never reached WeChat Pay: a re-run of the date sends it again", a.Kind)
	default:
		return nil // refused: nothing moved, as the ledger says
	}
	r.TheirsState = "NOT_FOUND"
	return []pipeline.Mismatch{r}
}

// lineOf returns the line of a WeChat order that an attempt is about: the
// platform's receiver for a distribution, the seller's for an unfreeze.
func lineOf(a pipeline.Attempt, lines []OrderLine) (OrderLine, bool) {
	for _, l := range lines {
		if l.Platform == (a.Kind == KindDistribution) {
			return l, true
		}
	}
	return OrderLine{}, false
}

// compareOrder compares an attempt with WeChat Pay's order.
func (m *matching) compareOrder(a pipeline.Attempt, st OrderStatus) []pipeline.Mismatch {
	l, ok := lineOf(a, st.Lines)
	r := m.attemptRow("", a)
	r.TheirsState = st.State
	if ok {
		r.Theirs, r.TheirsState = pipeline.Minor(l.Amount), st.State+"/"+l.Result
	}
	open := a.State == pipeline.EffectSent || a.State == pipeline.EffectUnknown
	switch {
	case st.State != StateFinished || ok && l.Result == ResultPending:
		r.Category, r.Expected, r.Detail = pipeline.MismatchTiming, true, "WeChat Pay is still processing it"
	case !ok && a.State == pipeline.EffectSucceeded:
		r.Category, r.Detail = pipeline.MismatchMissingAtProvider, fmt.Sprintf("WeChat Pay's order has no %s line", lineName(a))
	case open:
		r.Category, r.Detail = pipeline.MismatchStatus, "the ledger has not recorded WeChat Pay's answer: a re-run of the date adopts it"
	case !ok:
		return nil
	case l.Result == ResultClosed && a.State == pipeline.EffectSucceeded:
		r.Category, r.Detail = pipeline.MismatchStatus, strings.TrimSpace("WeChat Pay closed the "+lineName(a)+" line: "+l.FailReason)
	case l.Result == ResultSuccess && a.State == pipeline.EffectFailed:
		r.Category, r.Detail = pipeline.MismatchStatus, "WeChat Pay paid the "+lineName(a)+" line the ledger recorded failed"
	case l.Result == ResultSuccess && a.State == pipeline.EffectSucceeded && l.Amount != expected(a):
		r.Category, r.Detail = pipeline.MismatchAmount, fmt.Sprintf("WeChat Pay's %s line moves another amount", lineName(a))
	default:
		return nil
	}
	return []pipeline.Mismatch{r}
}

func lineName(a pipeline.Attempt) string {
	if a.Kind == KindUnfreeze {
		return "unfreeze"
	}
	return "platform receiver's"
}

// days returns the Beijing days on which WeChat accepted the run's
// attempts, in order.
func (m *matching) days() []pipeline.Date {
	set := map[pipeline.Date]bool{}
	for _, t := range m.accepted {
		set[pipeline.DateOf(t.In(Beijing))] = true
	}
	days := slices.Collect(maps.Keys(set))
	slices.SortFunc(days, func(a, b pipeline.Date) int { return cmp.Compare(a.String(), b.String()) })
	return days
}

// bill is check 2 for one sub-merchant and day.
func (m *matching) bill(ctx context.Context, sub string, day pipeline.Date) ([]pipeline.Mismatch, error) {
	subject := "bill/" + sub + "/" + day.String()
	if m.at.Before(day.AddDays(1).Time(Beijing)) {
		return []pipeline.Mismatch{{Provider: Name, Category: pipeline.MismatchTiming, Subject: subject, SellerID: m.subSeller[sub],
			Expected: true, Detail: "the distribution bill of " + day.String() + " is not out yet: the day is not over in Beijing"}}, nil
	}
	lines, err := m.api.BillLines(ctx, sub, day)
	if err != nil {
		return nil, fmt.Errorf("bill of %s at %s: %w", day, sub, err)
	}
	var out []pipeline.Mismatch
	seen := map[string]bool{}
	for _, l := range lines {
		it, ours := m.txns[l.TransactionID]
		if !ours {
			continue
		}
		a, have := m.keys[l.OutOrderNo]
		mine := have && (a.Kind == KindDistribution && l.Type == BillDistribution && l.Platform ||
			a.Kind == KindUnfreeze && l.Type == BillUnfreeze)
		r := m.row("", l.OutOrderNo, it)
		r.Theirs, r.TheirsState = pipeline.Minor(l.Amount), l.Type+" in the bill of "+day.String()
		if have {
			r.Ours, r.OursState = pipeline.Minor(expected(a)), string(a.State)
		}
		switch {
		case have && a.State == pipeline.EffectSucceeded && a.Kind == KindDistribution && l.Type == BillUnfreeze:
			continue // the rest released with unfreeze_unsplit: not recorded by the ledger
		case !have || a.State != pipeline.EffectSucceeded:
			r.Category, r.Detail = pipeline.MismatchMissingInLedger, fmt.Sprintf("WeChat Pay moved money of transaction %s that the ledger has no succeeded request for", l.TransactionID)
		case !mine || seen[a.Key]:
			r.Category, r.Detail = pipeline.MismatchMissingInLedger, fmt.Sprintf("a %s line the %s did not ask for", strings.ToLower(l.Type), a.Kind)
		case l.Currency != a.Currency:
			seen[a.Key] = true
			r.Category, r.Currency, r.Detail = pipeline.MismatchCurrency, string(a.Currency), "the bill's line is in "+string(l.Currency)
		case l.Amount != expected(a):
			seen[a.Key] = true
			r.Category, r.Detail = pipeline.MismatchAmount, fmt.Sprintf("the bill's %s line moves another amount", lineName(a))
		default:
			seen[a.Key] = true
			continue
		}
		out = append(out, r)
	}
	for _, a := range m.attempts {
		if a.State != pipeline.EffectSucceeded || a.Item.Account != sub || seen[a.Key] || expected(a) <= 0 || !m.found[a.Key] ||
			pipeline.DateOf(m.accepted[a.Key].In(Beijing)) != day {
			continue
		}
		r := m.attemptRow(pipeline.MismatchMissingAtProvider, a)
		r.TheirsState, r.Detail = "not in the bill", fmt.Sprintf("WeChat Pay accepted it on %s; the bill of that day has no %s line", day, lineName(a))
		out = append(out, r)
	}
	return out, nil
}

// distributed sums the ledger's succeeded distributions - any run, any
// date - by sub-merchant, Beijing day (when WeChat accepted them) and
// currency: key sub + "/" + day, then currency.
func (m *matching) distributed(ctx context.Context, subs []string, days []pipeline.Date) (map[string]map[pipeline.Currency]int64, error) {
	from := days[0].Time(Beijing).Add(-clockMargin)
	to := days[len(days)-1].AddDays(1).Time(Beijing).Add(clockMargin)
	all, err := m.store.WeChatDistributed(ctx, KindDistribution, subs, from, to)
	if err != nil {
		return nil, err
	}
	// The run's own, even if the clocks disagree by more than the margin.
	listed := map[string]bool{}
	for _, a := range all {
		listed[a.Key] = true
	}
	for _, a := range m.attempts {
		if a.Kind == KindDistribution && a.State == pipeline.EffectSucceeded && a.Amount > 0 && !listed[a.Key] && slices.Contains(subs, a.Item.Account) {
			all = append(all, a)
		}
	}
	var ask []pipeline.Attempt
	m.mu.Lock()
	for _, a := range all {
		if _, known := m.accepted[a.Key]; !known {
			ask = append(ask, a)
		}
	}
	m.mu.Unlock()
	// Those of other runs whose final answer their own run kept are not
	// asked.
	finals, err := m.finals(ctx, ask)
	if err != nil {
		return nil, err
	}
	ask = slices.DeleteFunc(ask, func(a pipeline.Attempt) bool {
		day, final := finals[a.Key]
		if final {
			m.acceptedOn(a, day)
		}
		return final
	})
	err = m.pacer.Each(ctx, len(ask), func(i int) string { return ask[i].Item.Account }, func(ctx context.Context, i int) error {
		a := ask[i]
		st, err := m.api.Order(ctx, a.Item.Account, a.Item.TransactionID, a.Key)
		if err != nil && !pipeline.IsNotFound(err) && !subjectError(err) {
			return fmt.Errorf("%s %s of order %s: %w", a.Kind, a.Key, a.Item.OrderNo, err)
		}
		at := a.Recorded // WeChat no longer knows it, or will not say: the ledger's time
		if err == nil && !st.AcceptedAt.IsZero() {
			at = st.AcceptedAt
		}
		m.mu.Lock()
		m.accepted[a.Key] = at
		m.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sums := map[string]map[pipeline.Currency]int64{}
	for _, a := range all {
		k := a.Item.Account + "/" + pipeline.DateOf(m.accepted[a.Key].In(Beijing)).String()
		if sums[k] == nil {
			sums[k] = map[pipeline.Currency]int64{}
		}
		if sums[k][a.Currency], err = pipeline.Add(sums[k][a.Currency], a.Amount); err != nil {
			return nil, fmt.Errorf("distributed at %s: %w", k, err)
		}
	}
	return sums, nil
}

// settlements is check 3 for one sub-merchant and day, with what the
// ledger distributed by currency.
func (m *matching) settlements(ctx context.Context, sub string, day pipeline.Date, ours map[pipeline.Currency]int64) ([]pipeline.Mismatch, error) {
	details, err := m.api.Settlements(ctx, sub, day)
	if err != nil {
		return nil, fmt.Errorf("settlements of %s at %s: %w", day, sub, err)
	}
	type total struct {
		amount    int64
		unsettled bool
		states    []string
		batches   []string
	}
	theirs := map[pipeline.Currency]*total{}
	for _, s := range details {
		t := theirs[s.Currency]
		if t == nil {
			t = &total{}
			theirs[s.Currency] = t
		}
		if t.amount, err = pipeline.Add(t.amount, s.Amount); err != nil {
			return nil, fmt.Errorf("settlements of %s at %s: %w", day, sub, err)
		}
		t.unsettled = t.unsettled || s.State == SettleStateUnsettled
		if !slices.Contains(t.states, s.State) {
			t.states = append(t.states, s.State)
		}
		t.batches = append(t.batches, s.BatchNo)
	}
	curs := slices.Sorted(maps.Keys(ours))
	for c := range theirs {
		if _, ok := ours[c]; !ok {
			curs = append(curs, c)
		}
	}
	slices.Sort(curs)
	var out []pipeline.Mismatch
	for _, c := range curs {
		o, t := ours[c], theirs[c]
		r := pipeline.Mismatch{Provider: Name, Subject: fmt.Sprintf("settlement/%s/%s/%s", sub, day, c), SellerID: m.subSeller[sub],
			Currency: string(c), Ours: pipeline.Minor(o), OursState: string(pipeline.EffectSucceeded)}
		switch {
		case t == nil && o == 0:
			continue
		case t == nil:
			r.Category, r.TheirsState = pipeline.MismatchMissingAtProvider, "NOT_FOUND"
			r.Detail = "no fund settlement detail at WeChat Pay for what was distributed on " + day.String()
			out = append(out, r)
			continue
		}
		slices.Sort(t.states)
		slices.Sort(t.batches)
		r.Theirs, r.TheirsState = pipeline.Minor(t.amount), strings.Join(t.states, ",")
		batches := "batch " + strings.Join(t.batches, ", ")
		switch {
		case t.unsettled && t.amount >= o:
			r.Category, r.Expected, r.Detail = pipeline.MismatchTiming, true, "funds still UNSETTLE ("+batches+")"
			if t.amount > o {
				r.Detail = "funds still UNSETTLE (" + batches + "); WeChat counts more than the ledger has recorded succeeded so far"
			}
		case t.unsettled:
			r.Category, r.Detail = pipeline.MismatchAmount, "funds still UNSETTLE but less than the ledger distributed on "+day.String()+" ("+batches+")"
		case t.amount != o:
			r.Category, r.Detail = pipeline.MismatchAmount, "SETTLED with another amount than the ledger distributed on "+day.String()+" ("+batches+")"
		default:
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
