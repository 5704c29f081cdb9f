package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// WeChat Pay's words for the state of a distribution or unfreeze order, the
// result of one of its lines, and the state of a fund settlement detail.
const (
	WeChatProcessing = "PROCESSING"
	WeChatFinished   = "FINISHED"
	WeChatPending    = "PENDING"
	WeChatSuccess    = "SUCCESS"
	WeChatClosed     = "CLOSED"
	WeChatSettled    = "SETTLED"
	WeChatUnsettled  = "UNSETTLE"
)

// Types of a distribution bill line: a payment to a receiver, or the rest
// of a transaction released to the seller.
const (
	WeChatLineDistribution = "DISTRIBUTION"
	WeChatLineUnfreeze     = "UNFREEZE"
)

// weChatZone is the time zone of WeChat Pay's days: bills and settlement
// details are per Beijing day (UTC+8, no daylight saving).
var weChatZone = time.FixedZone("CST", 8*3600)

// weChatClockMargin widens the window in which the ledger looks for the
// distributions WeChat Pay may have accepted on a day, for the clocks of
// the ledger's database and of WeChat Pay, which are not the same.
const weChatClockMargin = 10 * time.Minute

// weChatParallel is how many WeChat Pay queries the matcher has in flight;
// the client keeps to WeChat's QPS limits.
const weChatParallel = 8

// WeChatItem is one of a run's wechatpay items as the WeChat matcher sees it.
type WeChatItem struct {
	OrderNo       string
	SellerID      string
	SubMchID      string // the seller's sub-merchant, as the run recorded it
	TransactionID string
	Currency      Currency
	// SellerShare (minor units) is what is left to the seller after the
	// commission: what an unfreeze (commission 0) releases.
	SellerShare int64
	State       string // the item's state in the ledger, e.g. ItemRecorded
	Reason      string // why it is in that state, e.g. a hold
}

// WeChatAttempt is one distribution or unfreeze attempt the ledger
// recorded for a wechatpay item, with the item.
type WeChatAttempt struct {
	Effect              // Kind, Key (out_order_no), Currency, Amount (the commission), State
	Item     WeChatItem // SubMchID: the one the attempt was sent to
	Planned  time.Time  // when the intent was recorded
	Recorded time.Time  // when the ledger last changed it: for a final attempt, when WeChat's answer was recorded
}

// expected returns what the attempt's line at WeChat should move (minor
// units): the commission to the platform's receiver for a distribution,
// the seller's share for an unfreeze.
func (a WeChatAttempt) expected() int64 {
	if a.Kind == KindUnfreeze {
		return a.Item.SellerShare
	}
	return a.Amount
}

// WeChatOrderStatus is WeChat Pay's word on one distribution or unfreeze.
type WeChatOrderStatus struct {
	State      string    // WeChatProcessing or WeChatFinished
	AcceptedAt time.Time // when WeChat Pay accepted the request (its create_time); zero when it did not say
	Lines      []WeChatLine
}

// WeChatLine is one receiver line of a WeChatOrderStatus.
type WeChatLine struct {
	Platform   bool   // the line pays the platform's receiver (else another receiver, or the seller for an unfreeze)
	Result     string // WeChatPending, WeChatSuccess or WeChatClosed
	FailReason string // with WeChatClosed
	Amount     int64  // minor units
}

// WeChatBillLine is one line of a sub-merchant's funds-distribution bill.
type WeChatBillLine struct {
	Time          time.Time
	TransactionID string
	OutOrderNo    string
	Type          string // WeChatLineDistribution or WeChatLineUnfreeze
	Platform      bool   // the line pays the platform's receiver
	Currency      Currency
	Amount        int64 // minor units
}

// WeChatSettlement is one fund settlement detail (batch) of a sub-merchant.
type WeChatSettlement struct {
	BatchNo  string
	State    string // WeChatSettled or WeChatUnsettled
	Currency Currency
	Amount   int64 // minor units
}

// WeChatReconciler is what the WeChat matcher needs of WeChat Pay Global.
// Days are Beijing days. The adapter reads bills and settlement details in
// their published shapes, mapping what the published pages leave open
// under the assumptions of its package (see the README).
type WeChatReconciler interface {
	// Order returns WeChat Pay's word on the distribution or unfreeze
	// outOrderNo of a transaction at a sub-merchant; an error wrapping
	// ErrNotFound when WeChat Pay does not know it.
	Order(ctx context.Context, subMchID, transactionID, outOrderNo string) (WeChatOrderStatus, error)
	// BillLines returns the sub-merchant's distribution bill of a day that
	// is over: every successful line of the orders accepted that day.
	BillLines(ctx context.Context, subMchID string, day Date) ([]WeChatBillLine, error)
	// Settlements returns the sub-merchant's fund settlement details of a
	// trade day, SETTLED and UNSETTLE, each holding what was distributed to
	// receivers that day in one currency (assumed, as in the fake).
	Settlements(ctx context.Context, subMchID string, day Date) ([]WeChatSettlement, error)
}

// WeChatReconcileStore is what the WeChat matcher needs of the ledger.
type WeChatReconcileStore interface {
	// WeChatItems returns the run's wechatpay items, whatever their state.
	WeChatItems(ctx context.Context, runID int64) ([]WeChatItem, error)
	// WeChatAttempts returns every distribution and unfreeze attempt of the
	// run's wechatpay items that may have been sent (state sent, unknown,
	// succeeded or failed), from any run of the date.
	WeChatAttempts(ctx context.Context, runID int64) ([]WeChatAttempt, error)
	// WeChatDistributed returns the succeeded distributions with a positive
	// amount - of any run and any date - sent to one of the sub-merchants
	// whose life in the ledger (from Planned to Recorded) overlaps
	// [from, to): every one WeChat Pay may have accepted in that interval.
	WeChatDistributed(ctx context.Context, subMchIDs []string, from, to time.Time) ([]WeChatAttempt, error)
}

// WeChatMatcher compares the ledger's view of a run's WeChat work with
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
// findings give the same rows. now tells whether a day is over in Beijing.
// An error of WeChat Pay or of the ledger is returned: findings are never
// guessed.
func WeChatMatcher(store WeChatReconcileStore, api WeChatReconciler, now func() time.Time) Matcher {
	return func(ctx context.Context, run *Run) ([]Mismatch, error) {
		m := &weChatMatch{store: store, api: api, now: now, run: run, txns: map[string]WeChatItem{},
			keys: map[string]WeChatAttempt{}, accepted: map[string]time.Time{}, found: map[string]bool{}, subSeller: map[string]string{}}
		ms, err := m.match(ctx)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: %w", err)
		}
		return ms, nil
	}
}

// weChatMatch is one run's matching.
type weChatMatch struct {
	store WeChatReconcileStore
	api   WeChatReconciler
	now   func() time.Time
	run   *Run
	at    time.Time // now, once: every bill of the run is judged out or not at the same moment

	items     []WeChatItem
	txns      map[string]WeChatItem // transaction id -> item
	subSeller map[string]string     // sub-merchant -> its seller, "" when several
	attempts  []WeChatAttempt
	keys      map[string]WeChatAttempt // out_order_no -> the run's attempt

	mu       sync.Mutex
	accepted map[string]time.Time // out_order_no -> when WeChat accepted it (ledger's time when WeChat does not know it)
	found    map[string]bool      // out_order_no -> WeChat knows it
}

func (m *weChatMatch) match(ctx context.Context) ([]Mismatch, error) {
	m.at = m.now()
	var err error
	if m.items, err = m.store.WeChatItems(ctx, m.run.ID); err != nil {
		return nil, err
	}
	if m.attempts, err = m.store.WeChatAttempts(ctx, m.run.ID); err != nil {
		return nil, err
	}
	for _, it := range m.items {
		m.txns[it.TransactionID] = it
		if s, ok := m.subSeller[it.SubMchID]; ok && s != it.SellerID {
			m.subSeller[it.SubMchID] = ""
		} else {
			m.subSeller[it.SubMchID] = it.SellerID
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
		day Date
	}
	var pairs []subDay
	for _, d := range days {
		for _, s := range subs {
			pairs = append(pairs, subDay{s, d})
		}
	}
	found := make([][]Mismatch, len(pairs))
	err = ForEach(ctx, weChatParallel, weChatIndexes(len(pairs)), func(i int) error {
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
func (m *weChatMatch) refused() []Mismatch {
	var out []Mismatch
	for _, it := range m.items {
		reason, held := strings.CutPrefix(it.Reason, "held: ")
		if it.State != ItemRecorded || !held || !strings.HasPrefix(reason, weChatRefusal) {
			continue
		}
		r := m.row(MismatchStatus, "transaction/"+it.TransactionID, it)
		r.OursState, r.TheirsState, r.Detail = it.State, "REFUSED", reason
		out = append(out, r)
	}
	return out
}

// weChatIndexes returns 0, 1, ..., n-1: the indexes forEach fills results at.
func weChatIndexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// row starts a mismatch about an item.
func (m *weChatMatch) row(category, subject string, it WeChatItem) Mismatch {
	return Mismatch{Provider: ProviderWeChat, Category: category, Subject: subject, OrderNo: it.OrderNo, SellerID: it.SellerID,
		Currency: string(it.Currency)}
}

// orders is check 1: every attempt queried by its out_order_no.
func (m *weChatMatch) orders(ctx context.Context) ([]Mismatch, error) {
	found := make([][]Mismatch, len(m.attempts))
	err := ForEach(ctx, weChatParallel, weChatIndexes(len(m.attempts)), func(i int) error {
		a := m.attempts[i]
		if a.Item.SubMchID == "" {
			r := m.attemptRow(MismatchStatus, a)
			r.Detail = "no WeChat sub-merchant recorded for the seller: cannot ask WeChat Pay"
			found[i] = []Mismatch{r}
			return nil
		}
		st, err := m.api.Order(ctx, a.Item.SubMchID, a.Item.TransactionID, a.Key)
		if err != nil && weChatSubjectError(err) {
			// WeChat Pay refused the question about this one, or answered
			// what cannot be read: reported, the others are compared.
			r := m.attemptRow(MismatchStatus, a)
			r.TheirsState, r.Detail = "REFUSED", weChatRefusal+err.Error()
			found[i] = []Mismatch{r}
			return nil
		}
		if err != nil && !IsNotFound(err) {
			return fmt.Errorf("%s %s of order %s: %w", a.Kind, a.Key, a.Item.OrderNo, err)
		}
		m.mu.Lock()
		if err == nil {
			m.found[a.Key] = true
			if !st.AcceptedAt.IsZero() {
				m.accepted[a.Key] = st.AcceptedAt
			}
		}
		if _, ok := m.accepted[a.Key]; !ok && a.State == EffectSucceeded {
			m.accepted[a.Key] = a.Recorded
		}
		m.mu.Unlock()
		if err != nil {
			found[i] = m.unknownOrder(a)
			return nil
		}
		found[i] = m.compareOrder(a, st)
		return nil
	})
	var out []Mismatch
	for _, f := range found {
		out = append(out, f...)
	}
	return out, err
}

func (m *weChatMatch) attemptRow(category string, a WeChatAttempt) Mismatch {
	r := m.row(category, a.Key, a.Item)
	r.Currency, r.Ours, r.OursState = string(a.Currency), Minor(a.expected()), string(a.State)
	return r
}

// unknownOrder compares an attempt WeChat Pay does not know.
func (m *weChatMatch) unknownOrder(a WeChatAttempt) []Mismatch {
	var r Mismatch
	switch a.State {
	case EffectSucceeded:
		r = m.attemptRow(MismatchMissingAtProvider, a)
		r.Detail = fmt.Sprintf("WeChat Pay does not know the %s of transaction %s", a.Kind, a.Item.TransactionID)
	case EffectSent, EffectUnknown:
		r = m.attemptRow(MismatchStatus, a)
		r.Detail = fmt.Sprintf("the %s never reached WeChat Pay: a re-run of the date sends it again", a.Kind)
	default:
		return nil // refused: nothing moved, as the ledger says
	}
	r.TheirsState = "NOT_FOUND"
	return []Mismatch{r}
}

// weChatLineOf returns the line of a WeChat order that an attempt is about: the
// platform's receiver for a distribution, the seller's for an unfreeze.
func weChatLineOf(a WeChatAttempt, lines []WeChatLine) (WeChatLine, bool) {
	for _, l := range lines {
		if l.Platform == (a.Kind == KindDistribution) {
			return l, true
		}
	}
	return WeChatLine{}, false
}

// compareOrder compares an attempt with WeChat Pay's order.
func (m *weChatMatch) compareOrder(a WeChatAttempt, st WeChatOrderStatus) []Mismatch {
	l, ok := weChatLineOf(a, st.Lines)
	r := m.attemptRow("", a)
	r.TheirsState = st.State
	if ok {
		r.Theirs, r.TheirsState = Minor(l.Amount), st.State+"/"+l.Result
	}
	open := a.State == EffectSent || a.State == EffectUnknown
	switch {
	case st.State != WeChatFinished || ok && l.Result == WeChatPending:
		r.Category, r.Expected, r.Detail = MismatchTiming, true, "WeChat Pay is still processing it"
	case !ok && a.State == EffectSucceeded:
		r.Category, r.Detail = MismatchMissingAtProvider, fmt.Sprintf("WeChat Pay's order has no %s line", weChatLineName(a))
	case open:
		r.Category, r.Detail = MismatchStatus, "the ledger has not recorded WeChat Pay's answer: a re-run of the date adopts it"
	case !ok:
		return nil
	case l.Result == WeChatClosed && a.State == EffectSucceeded:
		r.Category, r.Detail = MismatchStatus, strings.TrimSpace("WeChat Pay closed the "+weChatLineName(a)+" line: "+l.FailReason)
	case l.Result == WeChatSuccess && a.State == EffectFailed:
		r.Category, r.Detail = MismatchStatus, "WeChat Pay paid the "+weChatLineName(a)+" line the ledger recorded failed"
	case l.Result == WeChatSuccess && a.State == EffectSucceeded && l.Amount != a.expected():
		r.Category, r.Detail = MismatchAmount, fmt.Sprintf("WeChat Pay's %s line moves another amount", weChatLineName(a))
	default:
		return nil
	}
	return []Mismatch{r}
}

func weChatLineName(a WeChatAttempt) string {
	if a.Kind == KindUnfreeze {
		return "unfreeze"
	}
	return "platform receiver's"
}

// days returns the Beijing days on which WeChat accepted the run's
// attempts, in order.
func (m *weChatMatch) days() []Date {
	set := map[Date]bool{}
	for _, t := range m.accepted {
		set[DateOf(t.In(weChatZone))] = true
	}
	days := slices.Collect(maps.Keys(set))
	slices.SortFunc(days, func(a, b Date) int { return cmp.Compare(a.String(), b.String()) })
	return days
}

// bill is check 2 for one sub-merchant and day.
func (m *weChatMatch) bill(ctx context.Context, sub string, day Date) ([]Mismatch, error) {
	subject := "bill/" + sub + "/" + day.String()
	if m.at.Before(day.AddDays(1).Time(weChatZone)) {
		return []Mismatch{{Provider: ProviderWeChat, Category: MismatchTiming, Subject: subject, SellerID: m.subSeller[sub],
			Expected: true, Detail: "the distribution bill of " + day.String() + " is not out yet: the day is not over in Beijing"}}, nil
	}
	lines, err := m.api.BillLines(ctx, sub, day)
	if err != nil {
		return nil, fmt.Errorf("bill of %s at %s: %w", day, sub, err)
	}
	var out []Mismatch
	seen := map[string]bool{}
	for _, l := range lines {
		it, ours := m.txns[l.TransactionID]
		if !ours {
			continue
		}
		a, have := m.keys[l.OutOrderNo]
		mine := have && (a.Kind == KindDistribution && l.Type == WeChatLineDistribution && l.Platform ||
			a.Kind == KindUnfreeze && l.Type == WeChatLineUnfreeze)
		r := m.row("", l.OutOrderNo, it)
		r.Theirs, r.TheirsState = Minor(l.Amount), l.Type+" in the bill of "+day.String()
		if have {
			r.Ours, r.OursState = Minor(a.expected()), string(a.State)
		}
		switch {
		case have && a.State == EffectSucceeded && a.Kind == KindDistribution && l.Type == WeChatLineUnfreeze:
			continue // the rest released with unfreeze_unsplit: not recorded by the ledger
		case !have || a.State != EffectSucceeded:
			r.Category, r.Detail = MismatchMissingInLedger, fmt.Sprintf("WeChat Pay moved money of transaction %s that the ledger has no succeeded request for", l.TransactionID)
		case !mine || seen[a.Key]:
			r.Category, r.Detail = MismatchMissingInLedger, fmt.Sprintf("a %s line the %s did not ask for", strings.ToLower(l.Type), a.Kind)
		case l.Currency != a.Currency:
			seen[a.Key] = true
			r.Category, r.Currency, r.Detail = MismatchCurrency, string(a.Currency), "the bill's line is in "+string(l.Currency)
		case l.Amount != a.expected():
			seen[a.Key] = true
			r.Category, r.Detail = MismatchAmount, fmt.Sprintf("the bill's %s line moves another amount", weChatLineName(a))
		default:
			seen[a.Key] = true
			continue
		}
		out = append(out, r)
	}
	for _, a := range m.attempts {
		if a.State != EffectSucceeded || a.Item.SubMchID != sub || seen[a.Key] || a.expected() <= 0 || !m.found[a.Key] ||
			DateOf(m.accepted[a.Key].In(weChatZone)) != day {
			continue
		}
		r := m.attemptRow(MismatchMissingAtProvider, a)
		r.TheirsState, r.Detail = "not in the bill", fmt.Sprintf("WeChat Pay accepted it on %s; the bill of that day has no %s line", day, weChatLineName(a))
		out = append(out, r)
	}
	return out, nil
}

// distributed sums the ledger's succeeded distributions - any run, any
// date - by sub-merchant, Beijing day (when WeChat accepted them) and
// currency: key sub + "/" + day, then currency.
func (m *weChatMatch) distributed(ctx context.Context, subs []string, days []Date) (map[string]map[Currency]int64, error) {
	from := days[0].Time(weChatZone).Add(-weChatClockMargin)
	to := days[len(days)-1].AddDays(1).Time(weChatZone).Add(weChatClockMargin)
	all, err := m.store.WeChatDistributed(ctx, subs, from, to)
	if err != nil {
		return nil, err
	}
	// The run's own, even if the clocks disagree by more than the margin.
	listed := map[string]bool{}
	for _, a := range all {
		listed[a.Key] = true
	}
	for _, a := range m.attempts {
		if a.Kind == KindDistribution && a.State == EffectSucceeded && a.Amount > 0 && !listed[a.Key] && slices.Contains(subs, a.Item.SubMchID) {
			all = append(all, a)
		}
	}
	var ask []WeChatAttempt
	m.mu.Lock()
	for _, a := range all {
		if _, known := m.accepted[a.Key]; !known {
			ask = append(ask, a)
		}
	}
	m.mu.Unlock()
	err = ForEach(ctx, weChatParallel, ask, func(a WeChatAttempt) error {
		st, err := m.api.Order(ctx, a.Item.SubMchID, a.Item.TransactionID, a.Key)
		if err != nil && !IsNotFound(err) && !weChatSubjectError(err) {
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
	sums := map[string]map[Currency]int64{}
	for _, a := range all {
		k := a.Item.SubMchID + "/" + DateOf(m.accepted[a.Key].In(weChatZone)).String()
		if sums[k] == nil {
			sums[k] = map[Currency]int64{}
		}
		if sums[k][a.Currency], err = Add(sums[k][a.Currency], a.Amount); err != nil {
			return nil, fmt.Errorf("distributed at %s: %w", k, err)
		}
	}
	return sums, nil
}

// settlements is check 3 for one sub-merchant and day, with what the
// ledger distributed by currency.
func (m *weChatMatch) settlements(ctx context.Context, sub string, day Date, ours map[Currency]int64) ([]Mismatch, error) {
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
	theirs := map[Currency]*total{}
	for _, s := range details {
		t := theirs[s.Currency]
		if t == nil {
			t = &total{}
			theirs[s.Currency] = t
		}
		if t.amount, err = Add(t.amount, s.Amount); err != nil {
			return nil, fmt.Errorf("settlements of %s at %s: %w", day, sub, err)
		}
		t.unsettled = t.unsettled || s.State == WeChatUnsettled
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
	var out []Mismatch
	for _, c := range curs {
		o, t := ours[c], theirs[c]
		r := Mismatch{Provider: ProviderWeChat, Subject: fmt.Sprintf("settlement/%s/%s/%s", sub, day, c), SellerID: m.subSeller[sub],
			Currency: string(c), Ours: Minor(o), OursState: string(EffectSucceeded)}
		switch {
		case t == nil && o == 0:
			continue
		case t == nil:
			r.Category, r.TheirsState = MismatchMissingAtProvider, "NOT_FOUND"
			r.Detail = "no fund settlement detail at WeChat Pay for what was distributed on " + day.String()
			out = append(out, r)
			continue
		}
		slices.Sort(t.states)
		slices.Sort(t.batches)
		r.Theirs, r.TheirsState = Minor(t.amount), strings.Join(t.states, ",")
		batches := "batch " + strings.Join(t.batches, ", ")
		switch {
		case t.unsettled && t.amount >= o:
			r.Category, r.Expected, r.Detail = MismatchTiming, true, "funds still UNSETTLE ("+batches+")"
			if t.amount > o {
				r.Detail = "funds still UNSETTLE (" + batches + "); WeChat counts more than the ledger has recorded succeeded so far"
			}
		case t.unsettled:
			r.Category, r.Detail = MismatchAmount, "funds still UNSETTLE but less than the ledger distributed on "+day.String()+" ("+batches+")"
		case t.amount != o:
			r.Category, r.Detail = MismatchAmount, "SETTLED with another amount than the ledger distributed on "+day.String()+" ("+batches+")"
		default:
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
