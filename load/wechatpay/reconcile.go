package wechatpay

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// agrees reports whether got, what WeChat Pay's line of attempt a moved,
// is what the ledger expects of it: a distribution's commission exactly;
// an unfreeze's the seller's share, or less by at most feeBps of it
// (WeChat Pay holds an order's amount less its fee: StageConfig.MaxFeeBps).
func agrees(a pipeline.Attempt, got, feeBps int64) bool {
	want := expected(a)
	if a.Kind != KindUnfreeze || feeBps <= 0 || got >= want {
		return got == want
	}
	lo, err := pipeline.MulDivFloor(want, 10000-min(feeBps, 10000), 10000)
	return err == nil && got >= lo
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
	Rest       bool   // the line releases the rest of a distribution to the seller (unfreeze_unsplit: 解冻给分账方)
	Result     string // ResultPending, ResultSuccess or ResultClosed
	FailReason string // with ResultClosed
	// Currency is the line's currency as WeChat Pay names it
	// (receivers[].currency); "" when it does not.
	Currency pipeline.Currency
	Amount   int64 // minor units
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

// ReconcileStore is what the WeChat matcher needs of the ledger. It reads
// a run in pages (keyset pagination, limit 0: every row), so that the
// matcher holds a page at a time, not the day.
type ReconcileStore interface {
	// WeChatItemsAfter returns at most limit of the run's items of channel
	// ch whose order number comes after `after`, whatever their state, by
	// order number, each with its seller's sub-merchant as the run recorded
	// it (Account; "" when none).
	WeChatItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error)
	// WeChatItemsByTransaction returns the run's items of channel ch (as
	// WeChatItemsAfter) whose transaction is one of txnIDs, by order number.
	WeChatItemsByTransaction(ctx context.Context, runID int64, ch pipeline.Channel, txnIDs []string) ([]pipeline.ChannelItem, error)
	// WeChatAttemptsAfter returns at most limit of the attempts of one of
	// kinds at the run's items of channel ch that may have been sent
	// (state sent, unknown, succeeded or failed), from any run of the date,
	// after (afterOrder, afterKey), by the item's order number and then the
	// attempt's key; the item's Account is the sub-merchant it was sent to.
	WeChatAttemptsAfter(ctx context.Context, runID int64, ch pipeline.Channel, kinds []string, afterOrder, afterKey string, limit int) ([]pipeline.Attempt, error)
	// WeChatAttemptsByKey returns those of the attempts WeChatAttemptsAfter
	// reads whose key is one of keys.
	WeChatAttemptsByKey(ctx context.Context, runID int64, ch pipeline.Channel, kinds, keys []string) ([]pipeline.Attempt, error)
	// WeChatDistributedAfter returns at most limit of the succeeded effects
	// of kind with a positive amount - of any run and any date, but those at
	// run exceptRun's items of channel ch - sent to one of the sub-merchants
	// whose life in the ledger (from Planned to Recorded) overlaps
	// [from, to): every other one WeChat Pay may have accepted in that
	// interval; those whose key comes after `after`, by key.
	WeChatDistributedAfter(ctx context.Context, kind string, subMchIDs []string, from, to time.Time, exceptRun int64, ch pipeline.Channel, after string, limit int) ([]pipeline.Attempt, error)
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
	// Now is the clock: it tells whether a day's bill is out (BillOut).
	Now func() time.Time
	// Memory is how long WeChat Pay's order query is taken to remember an
	// out_order_no (DistributionSender.Memory; 0: DefaultMemory): a
	// request the ledger recorded succeeded, planned longer ago, that
	// WeChat Pay no longer knows is reported unverifiable (expected), not
	// missing at WeChat Pay.
	Memory time.Duration
	// Page is how many items, attempts or bill lines the matcher reads
	// and matches at a time (default DefaultPage).
	Page int
	// MaxFeeBps is the stage's (StageConfig.MaxFeeBps): an unfreeze's
	// line may release the seller's share less at most this much of it.
	MaxFeeBps int64
}

// DefaultPage is how many items, attempts or bill lines the matcher reads
// and matches at a time when MatcherConfig.Page is 0.
const DefaultPage = pipeline.MatchPage

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
//     expected while ours is open too; status when the ledger recorded it
//     final (the state went back). FINISHED: the line - the platform's receiver for a
//     distribution, the seller's for an unfreeze - CLOSED while ours
//     succeeded, or SUCCESS while ours failed or is still open: status;
//     SUCCESS with another amount than the commission (distribution) or
//     the seller's share, less at most MaxFeeBps of it (unfreeze): amount.
//  2. For each sub-merchant of the run's items and each Beijing day on
//     which WeChat accepted one of the run's attempts (the ledger's time
//     of the answer for an attempt WeChat no longer knows), the day's
//     distribution bill, once it is out, BillOut after the day is over
//     in Beijing (before: one expected timing row), and while WeChat Pay
//     keeps it, BillDays (after: one expected unverifiable row). A line on one of the
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
// findings give the same rows. c.Now tells whether a day's bill is out.
// An error of WeChat Pay or of the ledger is returned: findings are never
// guessed.
//
// The run is read and matched c.Page items, attempts or bill lines at a
// time (keyset pages), whatever the day: what checks 2 and 3 need of the
// attempts is folded per sub-merchant and Beijing day (how many lines each
// day's bill must show, what was distributed), and the bill's lines are
// looked up in the ledger a page at a time. Only an attempt whose answer
// is not the usual one - WeChat Pay knows it and accepted it on the
// Beijing day the ledger recorded its answer - is remembered by its
// out_order_no; a bill that shows fewer of the run's lines than expected
// reads the run's attempts again to name the missing ones.
//
// Every query goes out as fast as c.Pacer allows, in the lane of its
// sub-merchant (a bill and the settlement details of a sub-merchant and
// day start as one; the client's own buckets pace each request). An
// attempt whose order WeChat Pay answered FINISHED in agreement with the
// ledger's final state is recorded in c.Final, keyed by its out_order_no,
// sub-merchant, kind, state, currency and amount and the Beijing day WeChat
// accepted it: a later matching of the date does not ask it again (it
// takes that day for checks 2 and 3), unless the ledger's row changed. The
// distribute stage records under the same key (AgreedKey) the answers it
// adopted FINISHED and in agreement, once the ledger holds them: the run's
// own reconciliation does not ask those either. Bills and settlement
// details are read every time.
//
// A WeChat Pay that does not answer at all stops the matching: its
// questions (orders, bills, settlement details: the Adapter's go through
// pipeline.Ask) share one breaker (pipeline.WithBreaker), and once
// pipeline.NotAnsweringAfter in a row got no answer nothing more is
// asked. No finding is returned for what was not asked - neither a
// mismatch nor an agreement: the matcher's error is WeChat Pay not
// answering (pipeline.NotAnswering: exit 1, resumable), the reconcile
// stage records no finding and writes no report, and the next run asks
// again all that was not answered (what was answered final and in
// agreement is kept, KeepFinal). Before, each question took its client's
// retries, one after another, whatever the ones before had found.
func Matcher(c MatcherConfig) pipeline.Matcher {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	if c.Page <= 0 {
		c.Page = DefaultPage
	}
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		ctx = pipeline.WithBreaker(ctx) // the matching's questions to WeChat Pay
		m := &matching{store: c.Store, api: c.API, pacer: c.Pacer, final: c.Final, now: c.Now, run: run, page: c.Page, fee: c.MaxFeeBps,
			memory:    cmp.Or(c.Memory, DefaultMemory),
			subSeller: map[string]string{}, days: map[pipeline.Date]bool{}, groups: map[subDay]*group{}, odd: map[string]oddity{}}
		ms, err := m.match(ctx)
		if stopped := pipeline.StoppedNotAnswering(ctx, "WeChat Pay", err); stopped != nil {
			return nil, stopped
		}
		if err != nil {
			return nil, fmt.Errorf("wechatpay: %w", err)
		}
		return ms, nil
	}
}

// matching is one run's matching.
type matching struct {
	store  ReconcileStore
	api    Reconciler
	pacer  *pipeline.Pacer
	final  pipeline.FinalAnswers // nil: none kept
	now    func() time.Time
	run    *pipeline.Run
	page   int
	fee    int64         // MatcherConfig.MaxFeeBps
	memory time.Duration // MatcherConfig.Memory
	at     time.Time     // now, once: every bill of the run is judged out or not at the same moment

	subSeller map[string]string // sub-merchant -> its seller, "" when several
	subs      []string          // the run's sub-merchants, sorted

	// What checks 2 and 3 need of the run's attempts, folded a page at a
	// time by check 1 (read-only once it is done).
	days   map[pipeline.Date]bool // the Beijing days WeChat accepted one of them
	groups map[subDay]*group
	odd    map[string]oddity  // out_order_no -> a succeeded attempt whose answer is not the usual one
	again  []pipeline.Attempt // succeeded distributions WeChat Pay would not answer about: asked again for check 3
}

// billsAtOnce is how many sub-merchants' days the matcher compares at
// once at most (check 2 reads a day's bill whole).
const billsAtOnce = 16

// kinds are the attempts the matcher compares.
func kinds() []string { return []string{KindDistribution, KindUnfreeze} }

// subDay is one sub-merchant's Beijing day.
type subDay struct {
	sub string
	day pipeline.Date
}

// group is what checks 2 and 3 compare for one sub-merchant and day.
type group struct {
	lines       int                         // the run's succeeded attempts whose line the day's bill must show
	distributed map[pipeline.Currency]int64 // succeeded distributions of any run WeChat accepted that day
}

// oddity is what checks 2 and 3 need of a succeeded attempt of the run
// whose answer is not the usual one (WeChat Pay knows it and accepted it
// on the Beijing day the ledger recorded its answer).
type oddity struct {
	found bool          // WeChat Pay knows it
	dated bool          // the day WeChat accepted it is known (else it was not answered about)
	day   pipeline.Date // that day
}

// learnt is what check 1 learnt of one attempt.
type learnt struct {
	at    time.Time // when WeChat accepted it (the ledger's time for a succeeded one it does not know); zero: unknown
	found bool      // WeChat Pay knows it
	clean string    // its final key when WeChat's answer is final and agrees
	rows  []pipeline.Mismatch
}

func (m *matching) group(sub string, day pipeline.Date) *group {
	g := m.groups[subDay{sub, day}]
	if g == nil {
		g = &group{distributed: map[pipeline.Currency]int64{}}
		m.groups[subDay{sub, day}] = g
	}
	return g
}

func (m *matching) match(ctx context.Context) ([]pipeline.Mismatch, error) {
	m.at = m.now()
	refused, err := m.items(ctx)
	if err != nil {
		return nil, err
	}
	out, err := m.orders(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, refused...)
	days := slices.SortedFunc(maps.Keys(m.days), func(a, b pipeline.Date) int { return cmp.Compare(a.String(), b.String()) })
	if len(days) == 0 || len(m.subs) == 0 {
		return out, nil
	}
	if err := m.distributed(ctx, days); err != nil {
		return nil, err
	}
	var pairs []subDay
	for _, d := range days {
		for _, s := range m.subs {
			pairs = append(pairs, subDay{s, d})
		}
	}
	// The bills of at most billsAtOnce pairs at once (a bill is read
	// whole, and each holds a sub-merchant's day), the next begun as one
	// ends: in groups of billsAtOnce, each group waited for its slowest,
	// and a day of thousands of sub-merchants went at a few pairs a second
	// (found by a review of skewed days).
	found := make([][]pipeline.Mismatch, len(pairs))
	err = m.pacer.EachAtMost(ctx, len(pairs), billsAtOnce, func(i int) string { return pairs[i].sub }, func(ctx context.Context, i int) error {
		p := pairs[i]
		bill, err := m.bill(ctx, p.sub, p.day)
		if err != nil {
			return err
		}
		var ours map[pipeline.Currency]int64
		if g := m.groups[p]; g != nil {
			ours = g.distributed
		}
		settled, err := m.settlements(ctx, p.sub, p.day, ours)
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

// items reads the run's items a page at a time: their sub-merchants, and
// those held because WeChat Pay refused them, or answered about them what
// could not be read (a person must look), as rows.
func (m *matching) items(ctx context.Context) ([]pipeline.Mismatch, error) {
	var out []pipeline.Mismatch
	after := ""
	for {
		items, err := m.store.WeChatItemsAfter(ctx, m.run.ID, Channel, after, m.page)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if s, ok := m.subSeller[it.Account]; ok && s != it.SellerID {
				m.subSeller[it.Account] = ""
			} else {
				m.subSeller[it.Account] = it.SellerID
			}
			reason, held := strings.CutPrefix(it.Reason, pipeline.HeldPrefix)
			if it.State != pipeline.ItemRecorded || !held || !strings.HasPrefix(reason, refusal) {
				continue
			}
			r := row(pipeline.MismatchStatus, "transaction/"+it.TransactionID, it)
			r.OursState, r.TheirsState, r.Detail = it.State, "REFUSED", reason
			out = append(out, r)
		}
		if len(items) < m.page {
			break
		}
		after = items[len(items)-1].OrderNo
	}
	for sub := range m.subSeller {
		// A sub_mchid WeChat Pay cannot take held its sellers' items for
		// their account at transform (CheckSubMchID): nothing was asked
		// under it, and asking its bills and settlements was refused on
		// every run, a mismatch for a person beside the hold.
		if sub != "" && CheckSubMchID(sub) == nil {
			m.subs = append(m.subs, sub)
		}
	}
	slices.Sort(m.subs)
	return out, nil
}

// row starts a mismatch about an item.
func row(category, subject string, it pipeline.ChannelItem) pipeline.Mismatch {
	return pipeline.Mismatch{Provider: Name, Category: category, Subject: subject, OrderNo: it.OrderNo, SellerID: it.SellerID,
		Currency: string(it.Currency)}
}

// orders is check 1, a page of attempts at a time.
func (m *matching) orders(ctx context.Context) ([]pipeline.Mismatch, error) {
	return m.attemptPages(ctx, func(as []pipeline.Attempt) ([]pipeline.Mismatch, error) { return m.ordersPage(ctx, as) })
}

// attemptPages reads the run's attempts a page at a time (by order number
// and key) and returns what page finds in each, in order.
func (m *matching) attemptPages(ctx context.Context, page func([]pipeline.Attempt) ([]pipeline.Mismatch, error)) ([]pipeline.Mismatch, error) {
	var out []pipeline.Mismatch
	var afterOrder, afterKey string
	for {
		as, err := m.store.WeChatAttemptsAfter(ctx, m.run.ID, Channel, kinds(), afterOrder, afterKey, m.page)
		if err != nil {
			return nil, err
		}
		rows, err := page(as)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		if len(as) < m.page {
			return out, nil
		}
		afterOrder, afterKey = as[len(as)-1].Item.OrderNo, as[len(as)-1].Key
	}
}

// ordersPage is check 1 for a page of attempts: every attempt queried by
// its out_order_no, but those whose final answer was kept; what checks 2
// and 3 need of them is folded, and the answers final and in agreement
// are kept.
func (m *matching) ordersPage(ctx context.Context, as []pipeline.Attempt) ([]pipeline.Mismatch, error) {
	finals, err := m.finals(ctx, as)
	if err != nil {
		return nil, err
	}
	ans := make([]learnt, len(as))
	var ask []int
	for i, a := range as {
		day, final := finals[a.Key]
		switch {
		case a.Item.Account == "":
			r := attemptRow(pipeline.MismatchStatus, a)
			r.Detail = "no WeChat sub-merchant recorded for the seller: cannot ask WeChat Pay"
			ans[i].rows = []pipeline.Mismatch{r}
		case final:
			ans[i].found = true // FINISHED: WeChat Pay knows it
			ans[i].at = acceptedOn(a, day)
		default:
			ask = append(ask, i)
		}
	}
	err = m.pacer.Each(ctx, len(ask), func(j int) string { return as[ask[j]].Item.Account }, func(ctx context.Context, j int) error {
		an, a := &ans[ask[j]], as[ask[j]]
		st, err := m.api.Order(ctx, a.Item.Account, a.Item.TransactionID, a.Key)
		if err != nil && subjectError(err) {
			// WeChat Pay refused the question about this one, or answered
			// what cannot be read: reported, the others are compared.
			r := attemptRow(pipeline.MismatchStatus, a)
			r.TheirsState, r.Detail = "REFUSED", refusal+err.Error()
			an.rows = []pipeline.Mismatch{r}
			return nil
		}
		if err != nil && !pipeline.IsNotFound(err) {
			return fmt.Errorf("%s %s of order %s: %w", a.Kind, a.Key, a.Item.OrderNo, err)
		}
		if err != nil {
			if a.State == pipeline.EffectSucceeded {
				an.at = a.Recorded
			}
			an.rows = unknownOrder(a, m.now(), m.memory)
			return nil
		}
		an.rows, an.found = compareOrder(a, st, m.fee), true
		switch {
		case !st.AcceptedAt.IsZero():
			an.at = st.AcceptedAt
		case a.State == pipeline.EffectSucceeded:
			an.at = a.Recorded
		}
		an.clean, _ = agreedKey(a, st, an.at, m.fee)
		return nil
	})
	var clean []string
	for i := range as {
		if ans[i].clean != "" {
			clean = append(clean, ans[i].clean)
		}
	}
	slices.Sort(clean)
	// What was answered before a failure is kept too (KeepFinal).
	if err := pipeline.KeepFinal(ctx, m.final, FinalAnswersName, clean, err); err != nil {
		return nil, err
	}
	var out []pipeline.Mismatch
	for i, a := range as {
		out = append(out, ans[i].rows...)
		if a.Item.Account != "" {
			if err := m.fold(a, ans[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fold adds what checks 2 and 3 need of an attempt of the run to the
// groups, remembering it only when its answer is not the usual one.
func (m *matching) fold(a pipeline.Attempt, an learnt) error {
	dated := !an.at.IsZero()
	var day pipeline.Date
	if dated {
		day = pipeline.DateOf(an.at.In(Beijing))
		m.days[day] = true
	}
	if a.State != pipeline.EffectSucceeded {
		return nil
	}
	if !an.found || !dated || day != pipeline.DateOf(a.Recorded.In(Beijing)) {
		m.odd[a.Key] = oddity{found: an.found, dated: dated, day: day}
	}
	if an.found && dated && expected(a) > 0 {
		m.group(a.Item.Account, day).lines++
	}
	if _, ours := slices.BinarySearch(m.subs, a.Item.Account); a.Kind != KindDistribution || a.Amount <= 0 || !ours {
		return nil
	}
	if !dated {
		m.again = append(m.again, a) // WeChat Pay would not answer about it: asked again with the others
		return nil
	}
	return m.add(a, day)
}

// add counts a succeeded distribution in what was distributed at its
// sub-merchant on day.
func (m *matching) add(a pipeline.Attempt, day pipeline.Date) error {
	g := m.group(a.Item.Account, day)
	var err error
	if g.distributed[a.Currency], err = pipeline.Add(g.distributed[a.Currency], a.Amount); err != nil {
		return fmt.Errorf("distributed at %s/%s: %w", a.Item.Account, day, err)
	}
	return nil
}

// lineDay returns the Beijing day whose bill must show a line of an
// attempt of the run, and whether one must: it succeeded, moves money,
// and WeChat Pay knows it and said when it accepted it.
func (m *matching) lineDay(a pipeline.Attempt) (pipeline.Date, bool) {
	if a.State != pipeline.EffectSucceeded || a.Item.Account == "" || expected(a) <= 0 {
		return pipeline.Date{}, false
	}
	if o, odd := m.odd[a.Key]; odd {
		return o.day, o.found && o.dated
	}
	return pipeline.DateOf(a.Recorded.In(Beijing)), true
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

// agreedKey returns the key (FinalAnswersName) under which WeChat Pay's
// answer st about attempt a is kept, and whether it may be: the order is
// FINISHED, the ledger's state of a is final, and check 1 finds nothing
// between them. at is when WeChat Pay accepted a (zero: not known, the
// key names noDay).
func agreedKey(a pipeline.Attempt, st OrderStatus, at time.Time, feeBps int64) (string, bool) {
	if st.State != StateFinished || !a.State.Final() || len(compareOrder(a, st, feeBps)) > 0 {
		return "", false
	}
	day := noDay
	if !at.IsZero() {
		day = pipeline.DateOf(at.In(Beijing)).String()
	}
	return finalKey(a, day), true
}

// AgreedKey returns the key (FinalAnswersName) under which the matcher
// keeps WeChat Pay's answer st about effect e - a distribution or unfreeze
// of transaction o, whose seller's share is sellerShare (less at most
// feeBps of it for an unfreeze's line: StageConfig.MaxFeeBps) - as the
// distribute stage adopted it, and whether it may be kept: e succeeded,
// WeChat Pay's order is FINISHED with the line to the platform's receiver
// (distribution) or the seller (unfreeze) SUCCESS and moving what the
// ledger says, and it names when WeChat accepted it (the day of the key).
// The matcher finds this key for the attempt, and takes it as asked.
func AgreedKey(e pipeline.Effect, o Txn, sellerShare int64, st OrderStatus, feeBps int64) (string, bool) {
	a := pipeline.Attempt{Effect: e, Item: pipeline.ChannelItem{Account: o.SubMchID, TransactionID: o.TransactionID,
		Currency: o.Currency, SellerShare: sellerShare}}
	l, ok := lineOf(a, st.Lines)
	if e.State != pipeline.EffectSucceeded || st.AcceptedAt.IsZero() || !ok || l.Result != ResultSuccess {
		return "", false
	}
	return agreedKey(a, st, st.AcceptedAt, feeBps)
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

// acceptedOn returns when WeChat Pay accepted an attempt whose final
// answer was kept, from the day its key names (the ledger's time when it
// named none; zero for a failed one).
func acceptedOn(a pipeline.Attempt, day string) time.Time {
	if d, err := pipeline.ParseDate(day); err == nil {
		return d.Time(Beijing)
	}
	if a.State == pipeline.EffectSucceeded {
		return a.Recorded
	}
	return time.Time{}
}

func attemptRow(category string, a pipeline.Attempt) pipeline.Mismatch {
	r := row(category, a.Key, a.Item)
	r.Currency, r.Ours, r.OursState = string(a.Currency), pipeline.Minor(expected(a)), string(a.State)
	return r
}

// unknownOrder compares an attempt WeChat Pay does not know, at now,
// WeChat Pay's order query taken to remember memory: one planned longer
// ago may be forgotten. Reported missing at WeChat Pay, a succeeded one
// needed a person (exit 4) who might distribute it again; an open one was
// said to be sent again, which the stage no longer does.
func unknownOrder(a pipeline.Attempt, now time.Time, memory time.Duration) []pipeline.Mismatch {
	var r pipeline.Mismatch
	past := pipeline.PastMemory(a.Effect, now, memory, "WeChat Pay") != nil
	switch a.State {
	case pipeline.EffectSucceeded:
		if past {
			r = attemptRow(pipeline.MismatchUnverifiable, a)
			r.Expected = true
			r.Detail = fmt.Sprintf("recorded succeeded (WeChat Pay order %s) and no longer known to WeChat Pay's order query, planned %s ago, past the %s it is taken to remember: "+
				"not a missing distribution, do not distribute it again; WeChat Pay's bills and settlements show it", a.ProviderRef, pipeline.RoundDays(now.Sub(a.Planned)), pipeline.RoundDays(memory))
			break
		}
		if pipeline.ResolvedPaid(a.Effect) {
			// Recorded applied by a person from WeChat Pay's records, its
			// order query not knowing it then (it had answered it, and
			// forgot it within its memory): nothing new.
			r = attemptRow(pipeline.MismatchUnverifiable, a)
			r.Expected = true
			r.Detail = fmt.Sprintf("recorded applied by a person from WeChat Pay's records (WeChat Pay order %s) and not known to WeChat Pay's order query: "+
				"not a missing distribution, do not distribute it again; WeChat Pay's bills and settlements show it", a.ProviderRef)
			break
		}
		r = attemptRow(pipeline.MismatchMissingAtProvider, a)
		r.Detail = fmt.Sprintf("WeChat Pay does not know the %s of transaction %s", a.Kind, a.Item.TransactionID)
	case pipeline.EffectSent, pipeline.EffectUnknown:
		r = attemptRow(pipeline.MismatchStatus, a)
		r.Detail = fmt.Sprintf("the %s never reached WeChat Pay: a re-run of the date sends it again", a.Kind)
		if a.ProviderRef != "" {
			// WeChat Pay answered it before: not sent again
			// (pipeline.ApplyEffect).
			r.Detail = fmt.Sprintf("WeChat Pay answered the %s before (order %s) and its order query does not know it now: neither sent again nor failed; ask WeChat Pay", a.Kind, a.ProviderRef)
		}
		if past {
			r.Detail = fmt.Sprintf("the %s, planned %s ago, is no longer known to WeChat Pay's order query, past the %s it is taken to remember: it may have been applied and forgotten; held for a person, never sent again",
				a.Kind, pipeline.RoundDays(now.Sub(a.Planned)), pipeline.RoundDays(memory))
		}
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
		if about(a, l) {
			return l, true
		}
	}
	return OrderLine{}, false
}

// about reports whether l is a line attempt a is about: to the platform's
// receiver for a distribution; to the sub-merchant itself for an unfreeze
// (any line but the platform's was taken as the seller's, and an unfreeze
// WeChat Pay reported released to another account agreed).
func about(a pipeline.Attempt, l OrderLine) bool {
	if a.Kind == KindDistribution {
		return l.Platform
	}
	return l.Rest
}

// compareOrder compares an attempt with WeChat Pay's order (feeBps: see
// agrees).
func compareOrder(a pipeline.Attempt, st OrderStatus, feeBps int64) []pipeline.Mismatch {
	l, ok := lineOf(a, st.Lines)
	r := attemptRow("", a)
	r.TheirsState = st.State
	if ok {
		r.Theirs, r.TheirsState = pipeline.Minor(l.Amount), st.State+"/"+l.Result
	}
	// The line more than once: what they move in all (lineOf's first
	// alone was compared, and twice the commission found nothing). Lines
	// that add up past int64 give no figure: Add's 0 on overflow started
	// the sum again, and the report showed what the last lines moved.
	n, sum, over := 0, int64(0), false
	for _, x := range st.Lines {
		if about(a, x) {
			n++
			var err error
			if sum, err = pipeline.Add(sum, x.Amount); err != nil {
				over = true
			}
		}
	}
	inAll := money(sum, a.Currency)
	if n > 1 {
		r.Theirs = pipeline.Minor(sum)
	}
	if over {
		r.Theirs, inAll = "", "more than an int64 of minor units"
	}
	open := a.State == pipeline.EffectSent || a.State == pipeline.EffectUnknown
	processing := st.State != StateFinished || ok && l.Result == ResultPending
	switch {
	case processing && a.State == pipeline.EffectSucceeded:
		// Went back: the ledger took WeChat Pay's FINISHED answer and
		// applied it (a timing row needed no person).
		r.Category, r.Detail = pipeline.MismatchStatus, "the ledger recorded it succeeded on WeChat Pay's FINISHED answer; WeChat Pay now says it is processing: its state went back, ask WeChat Pay what it moved"
	case processing && a.State == pipeline.EffectFailed:
		// Went back: the ledger took a failure and may have sent the
		// order's split again under a new out_order_no.
		r.Category, r.Detail = pipeline.MismatchStatus, "the ledger recorded it failed; WeChat Pay now says it is processing: its state went back, and if it completes it the order's funds may move twice"
	case processing:
		r.Category, r.Expected, r.Detail = pipeline.MismatchTiming, true, "WeChat Pay is still processing it"
	case !ok && a.State == pipeline.EffectSucceeded:
		r.Category, r.Detail = pipeline.MismatchMissingAtProvider, fmt.Sprintf("WeChat Pay's order has no %s line", lineName(a))
	case open:
		r.Category, r.Detail = pipeline.MismatchStatus, "the ledger has not recorded WeChat Pay's answer: a re-run of the date adopts it"
	case !ok:
		return nil
	case n > 1:
		r.Category, r.Detail = pipeline.MismatchAmount, fmt.Sprintf("WeChat Pay's order has the %s line %d times, moving %s in all: the request asked for one", lineName(a), n, inAll)
	case l.Result == ResultClosed && a.State == pipeline.EffectSucceeded:
		r.Category, r.Detail = pipeline.MismatchStatus, strings.TrimSpace("WeChat Pay closed the "+lineName(a)+" line: "+l.FailReason)
	case l.Result == ResultSuccess && a.State == pipeline.EffectFailed:
		r.Category, r.Detail = pipeline.MismatchStatus, "WeChat Pay paid the "+lineName(a)+" line the ledger recorded failed"
	case l.Result == ResultSuccess && l.Currency != "" && a.Currency != "" && l.Currency != a.Currency:
		// Its amount is of another currency: never compared as ours.
		r.Category, r.Detail = pipeline.MismatchCurrency, fmt.Sprintf("WeChat Pay's %s line is in %s", lineName(a), l.Currency)
	case l.Result == ResultSuccess && a.State == pipeline.EffectSucceeded && !agrees(a, l.Amount, feeBps):
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

// BillOut is how long after a Beijing day ends its distribution bill is
// out. WeChat Pay publishes that a day's statements can be had from 09:00
// (Beijing time) the next day (WeChat Pay Global's reconciliation FAQ),
// and, for its bill APIs, that it starts making the day's bills at 09:00
// and they are best fetched after 10:00; the funds-distribution bill's
// own hour is not published (assumed alike). Asked at midnight, as it
// was, the bill of the day before is not made yet: the nightly run at
// 02:30 in Asia/Shanghai, rechecking yesterday's run, asked WeChat Pay
// for bills it had not made, and took its answer (a refusal, or a bill
// without the day's lines) for a finding that needs a person.
const BillOut = 10 * time.Hour

// BillDays is how many days WeChat Pay keeps a day's funds-distribution
// bill (published: bills can only be downloaded within 90 days). From
// BillDays after the day began (Beijing time) the bill is not asked: a
// date reconciled again later (re-run to close its gaps,
// --reconcile-all) asked for bills WeChat Pay no longer gives and took
// the refusal for a finding that needs a person.
const BillDays = 90

// bill is check 2 for one sub-merchant and day, a page of the bill's
// lines at a time.
func (m *matching) bill(ctx context.Context, sub string, day pipeline.Date) ([]pipeline.Mismatch, error) {
	subject := "bill/" + sub + "/" + day.String()
	if m.at.Before(day.AddDays(1).Time(Beijing).Add(BillOut)) {
		return []pipeline.Mismatch{{Provider: Name, Category: pipeline.MismatchTiming, Subject: subject, SellerID: m.subSeller[sub],
			Expected: true, Detail: "the distribution bill of " + day.String() + " is not out yet: WeChat Pay makes a day's bills the next morning, Beijing time"}}, nil
	}
	if !m.at.Before(day.AddDays(BillDays).Time(Beijing)) {
		return []pipeline.Mismatch{{Provider: Name, Category: pipeline.MismatchUnverifiable, Subject: subject, SellerID: m.subSeller[sub],
			Expected: true, Detail: fmt.Sprintf("the distribution bill of %s is not asked: WeChat Pay gives a day's bills for %d days; its settlement details and order queries are compared",
				day, BillDays)}}, nil
	}
	lines, err := m.api.BillLines(ctx, sub, day)
	if subjectError(err) {
		// WeChat Pay will not give this sub-merchant's bill, or gives one
		// that cannot be read: a finding about it; the others are matched.
		return []pipeline.Mismatch{{Provider: Name, Category: pipeline.MismatchStatus, Subject: subject, SellerID: m.subSeller[sub],
			TheirsState: "REFUSED", Detail: refusal + "the distribution bill of " + day.String() + ": " + err.Error()}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bill of %s at %s: %w", day, sub, err)
	}
	var out []pipeline.Mismatch
	seen := map[string]bool{}
	shown := 0 // lines seen that the bill must show
	for start := 0; start < len(lines); start += m.page {
		page := lines[start:min(start+m.page, len(lines))]
		keys, txns, err := m.billLookup(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("bill of %s at %s: %w", day, sub, err)
		}
		for _, l := range page {
			a, have := keys[l.OutOrderNo]
			it, ours := a.Item, have && a.Item.TransactionID == l.TransactionID
			if !ours {
				it, ours = txns[l.TransactionID]
			}
			if !ours {
				continue
			}
			mine := have && (a.Kind == KindDistribution && l.Type == BillDistribution && l.Platform ||
				a.Kind == KindUnfreeze && l.Type == BillUnfreeze)
			r := row("", l.OutOrderNo, it)
			r.Theirs, r.TheirsState = pipeline.Minor(l.Amount), l.Type+" in the bill of "+day.String()
			if have {
				r.Ours, r.OursState = pipeline.Minor(expected(a)), string(a.State)
			}
			switch {
			case have && a.Kind == KindDistribution && l.Type == BillUnfreeze:
				// The rest released with unfreeze_unsplit, whether the
				// receiver's line succeeded or closed: not recorded by the
				// ledger (the distribution's own line is checked).
				continue
			case !have || a.State != pipeline.EffectSucceeded:
				r.Category, r.Detail = pipeline.MismatchMissingInLedger, fmt.Sprintf("WeChat Pay moved money of transaction %s that the ledger has no succeeded request for", l.TransactionID)
				out = append(out, r)
				continue
			case !mine || seen[a.Key]:
				r.Category, r.Detail = pipeline.MismatchMissingInLedger, fmt.Sprintf("a %s line the %s did not ask for", strings.ToLower(l.Type), a.Kind)
				out = append(out, r)
				continue
			}
			seen[a.Key] = true
			if d, ok := m.lineDay(a); ok && d == day && a.Item.Account == sub {
				shown++
			}
			switch {
			case l.Currency != a.Currency:
				r.Category, r.Currency, r.Detail = pipeline.MismatchCurrency, string(a.Currency), "the bill's line is in "+string(l.Currency)
			case !agrees(a, l.Amount, m.fee):
				r.Category, r.Detail = pipeline.MismatchAmount, fmt.Sprintf("the bill's %s line moves another amount", lineName(a))
			default:
				continue
			}
			out = append(out, r)
		}
	}
	if g := m.groups[subDay{sub, day}]; g == nil || shown >= g.lines {
		return out, nil
	}
	missing, err := m.missing(ctx, sub, day, seen)
	return append(out, missing...), err
}

// billLookup looks up in the ledger what a page of a bill's lines names:
// the run's attempts by out_order_no, and the run's items by transaction
// for the lines whose out_order_no names no attempt of that transaction.
func (m *matching) billLookup(ctx context.Context, page []BillEntry) (map[string]pipeline.Attempt, map[string]pipeline.ChannelItem, error) {
	var names []string
	for _, l := range page {
		names = append(names, l.OutOrderNo)
	}
	slices.Sort(names)
	as, err := m.store.WeChatAttemptsByKey(ctx, m.run.ID, Channel, kinds(), slices.Compact(names))
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[string]pipeline.Attempt, len(as))
	for _, a := range as {
		keys[a.Key] = a
	}
	var txnIDs []string
	for _, l := range page {
		if a, have := keys[l.OutOrderNo]; !have || a.Item.TransactionID != l.TransactionID {
			txnIDs = append(txnIDs, l.TransactionID)
		}
	}
	txns := map[string]pipeline.ChannelItem{}
	if len(txnIDs) == 0 {
		return keys, txns, nil
	}
	slices.Sort(txnIDs)
	items, err := m.store.WeChatItemsByTransaction(ctx, m.run.ID, Channel, slices.Compact(txnIDs))
	if err != nil {
		return nil, nil, err
	}
	for _, it := range items {
		txns[it.TransactionID] = it
	}
	return keys, txns, nil
}

// missing reads the run's attempts again, a page at a time, for those a
// sub-merchant's bill of day must show but does not (seen: those it
// shows).
func (m *matching) missing(ctx context.Context, sub string, day pipeline.Date, seen map[string]bool) ([]pipeline.Mismatch, error) {
	return m.attemptPages(ctx, func(as []pipeline.Attempt) ([]pipeline.Mismatch, error) {
		var out []pipeline.Mismatch
		for _, a := range as {
			if d, ok := m.lineDay(a); !ok || d != day || a.Item.Account != sub || seen[a.Key] {
				continue
			}
			r := attemptRow(pipeline.MismatchMissingAtProvider, a)
			r.TheirsState, r.Detail = "not in the bill", fmt.Sprintf("WeChat Pay accepted it on %s; the bill of that day has no %s line", day, lineName(a))
			out = append(out, r)
		}
		return out, nil
	})
}

// distributed adds to the groups the succeeded distributions of other
// runs - any date - at the run's sub-merchants WeChat may have accepted on
// days, a page at a time, and those of the run WeChat Pay would not answer
// about in check 1: each one's day asked of WeChat Pay, unless its own
// run's matching kept its final answer.
func (m *matching) distributed(ctx context.Context, days []pipeline.Date) error {
	if err := m.distributedPage(ctx, m.again); err != nil {
		return err
	}
	from := days[0].Time(Beijing).Add(-clockMargin)
	to := days[len(days)-1].AddDays(1).Time(Beijing).Add(clockMargin)
	after := ""
	for {
		as, err := m.store.WeChatDistributedAfter(ctx, KindDistribution, m.subs, from, to, m.run.ID, Channel, after, m.page)
		if err != nil {
			return err
		}
		if err := m.distributedPage(ctx, as); err != nil {
			return err
		}
		if len(as) < m.page {
			return nil
		}
		after = as[len(as)-1].Key
	}
}

func (m *matching) distributedPage(ctx context.Context, as []pipeline.Attempt) error {
	finals, err := m.finals(ctx, as)
	if err != nil {
		return err
	}
	at := make([]time.Time, len(as))
	var ask []int
	for i, a := range as {
		if day, final := finals[a.Key]; final {
			at[i] = acceptedOn(a, day)
		} else {
			ask = append(ask, i)
		}
	}
	err = m.pacer.Each(ctx, len(ask), func(j int) string { return as[ask[j]].Item.Account }, func(ctx context.Context, j int) error {
		a := as[ask[j]]
		st, err := m.api.Order(ctx, a.Item.Account, a.Item.TransactionID, a.Key)
		if err != nil && !pipeline.IsNotFound(err) && !subjectError(err) {
			return fmt.Errorf("%s %s of order %s: %w", a.Kind, a.Key, a.Item.OrderNo, err)
		}
		at[ask[j]] = a.Recorded // WeChat no longer knows it, or will not say: the ledger's time
		if err == nil && !st.AcceptedAt.IsZero() {
			at[ask[j]] = st.AcceptedAt
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, a := range as {
		if err := m.add(a, pipeline.DateOf(at[i].In(Beijing))); err != nil {
			return err
		}
	}
	return nil
}

// settlements is check 3 for one sub-merchant and day, with what the
// ledger distributed by currency.
func (m *matching) settlements(ctx context.Context, sub string, day pipeline.Date, ours map[pipeline.Currency]int64) ([]pipeline.Mismatch, error) {
	details, err := m.api.Settlements(ctx, sub, day)
	if subjectError(err) {
		// Refused or unreadable for this sub-merchant alone: a finding.
		return []pipeline.Mismatch{{Provider: Name, Category: pipeline.MismatchStatus, Subject: "settlement/" + sub + "/" + day.String(),
			SellerID: m.subSeller[sub], TheirsState: "REFUSED", Detail: refusal + "the settlement details of " + day.String() + ": " + err.Error()}}, nil
	}
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
