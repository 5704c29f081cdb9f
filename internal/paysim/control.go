package paysim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// A Setting puts the simulated providers in one of the situations of the
// job's runbook (a trade file Infinia refuses, a seller it does not know,
// a WeChat Pay transaction it refuses, ...): Name is a Control's, Value its
// argument. The paysim command takes settings as flags at start and, while
// it runs, from `paysim ctl` through POST /paysim/control.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Control is one kind of Setting: the flag that sets it and what it does.
type Control struct {
	Name  string // the flag's name
	Usage string // the flag's help; its `quoted` word names the argument
	// parse reads a value and returns what applies it.
	parse func(v string) (func(*Sim) error, error)
}

// Controls are the settings the simulator takes, in the order of the
// help.
var Controls = []Control{
	{"balance", "the platform's Infinia balance, `[CUR=]MINOR`: minor units in CUR, or without CUR= in each currency of its state (repeatable; paysim starts with " +
		strconv.FormatInt(DefaultBalance, 10) + " in each of " + currencyList() + " and of the other currencies of --date's orders paid through Infinia)", parseBalance},
	{"binding", "a seller's Infinia binding, `INFINIA_ID=STATUS`: ACTIVE, PENDING, REJECTED, FROZEN, or NONE for a seller Infinia does not know (BIZ-404) (repeatable; applied after --bind-sellers)", parseBinding},
	{"available", "Infinia's available share of a seller in a currency, `INFINIA_ID:CUR=MINOR`, from now on (a later accepted trade file adds to it, a revenue share takes from it): below what settle owes the seller, its payout is held (repeatable)", parseAvailable},
	{"refuse-order", "Infinia refuses every later trade file listing an order, `ORDER=REASON`, with REASON on the order's row of its error file (repeatable; ORDER= takes it again)", parseRefuseOrder},
	{"lose-files-of", "Infinia loses every later trade file of seller `INFINIA_ID`: taken from the SFTP server, never known (repeatable)", sellerSwitch(true)},
	{"take-files-of", "undoes --lose-files-of: Infinia takes the later trade files of seller `INFINIA_ID` again (repeatable)", sellerSwitch(false)},
	{"refuse-status-of", "Infinia refuses every upload-status query about a trade file of a seller, `INFINIA_ID=CODE[:MESSAGE]`, with error CODE, e.g. SYS-005 (repeatable; INFINIA_ID= answers again)", parseRefuseStatus},
	{"fail-revenue-shares", "Infinia fails every later revenue share to a seller, `INFINIA_ID=REASON`, with REASON, after the job's checks passed (repeatable; INFINIA_ID= lets them succeed)", parseFailShares},
	{"wechat-refuse", "WeChat Pay refuses every request about a transaction, `TRANSACTION=CODE`, with error CODE, e.g. INVALID_REQUEST, HTTP 400 (repeatable; TRANSACTION= answers again)", parseWeChatRefuse},
	{"wechat-refund", "WeChat Pay refunds part of a transaction to the buyer, `TRANSACTION=MINOR` (minor units), a refund the platform does not show: WeChat then holds another amount than the order's (repeatable)", parseWeChatRefund},
	{"wechat-close-receiver", "WeChat Pay closes every later distribution line to a receiver, `[ACCOUNT=]REASON` (default ACCOUNT: the platform's receiver), with REASON, e.g. ACCOUNT_ABNORMAL (repeatable; an empty REASON opens it again)", parseCloseReceiver},
	{"payprotocol-status", "a Pay Protocol payment's status, `OUT_TRADE_NO=STATUS`: paid, pending, block-confirmation, partially-paid, failed or refunded (repeatable)", parsePayProtocolStatus},
}

// DefaultBalance is the platform's balance the paysim command starts with
// in each of Currencies (minor units).
const DefaultBalance int64 = 1_000_000_000_00

// Settings collects settings from the command line (AddFlags) in the
// order given.
type Settings []Setting

// AddFlags adds a repeatable flag to fs for every Control, each appending
// its checked value to set.
func (set *Settings) AddFlags(fs *flag.FlagSet) {
	for _, c := range Controls {
		fs.Func(c.Name, c.Usage, func(v string) error {
			if _, err := c.parse(v); err != nil {
				return err
			}
			*set = append(*set, Setting{c.Name, v})
			return nil
		})
	}
}

// ParseSettings reads settings from flags as paysim takes them
// ("--refuse-order", "O1=product type not allowed", ...): nothing else.
func ParseSettings(args []string) (Settings, error) {
	var set Settings
	fs := flag.NewFlagSet("paysim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	set.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return set, nil
}

// Apply applies settings in order; it stops at the first that cannot be
// applied (a transaction or payment the simulator does not hold).
func (s *Sim) Apply(set Settings) error {
	for _, st := range set {
		i := slices.IndexFunc(Controls, func(c Control) bool { return c.Name == st.Name })
		if i < 0 {
			return fmt.Errorf("unknown setting %q", st.Name)
		}
		apply, err := Controls[i].parse(st.Value)
		if err == nil {
			err = apply(s)
		}
		if err != nil {
			return fmt.Errorf("--%s %s: %w", st.Name, st.Value, err)
		}
	}
	return nil
}

// ControlPath is where the simulator takes settings while it runs: a POST
// of a JSON array of Settings, from a loopback address only.
const ControlPath = "/paysim/control"

// ControlURL is where the simulator takes settings while it runs.
func (s *Sim) ControlURL() string { return httpBase(s.ln) + ControlPath }

// serveControl applies the posted settings. Only a loopback peer may, and
// only with a JSON body (a browser's form post to loopback is refused).
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		http.Error(w, "paysim: the control endpoint answers loopback peers only", http.StatusForbidden)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "paysim: want Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	var set Settings
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&set); err != nil {
		http.Error(w, "paysim: want a JSON array of {\"name\", \"value\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.Apply(set); err != nil {
		http.Error(w, "paysim: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "applied %d settings\n", len(set))
}

// PostSettings sends settings to a running simulator's control endpoint
// (url: ControlURL, or the simulator's base URL).
func PostSettings(ctx context.Context, hc *http.Client, url string, set Settings) (string, error) {
	if !strings.HasSuffix(url, ControlPath) {
		url = strings.TrimSuffix(url, "/") + ControlPath
	}
	body, err := json.Marshal(set)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	msg := strings.TrimPrefix(strings.TrimSpace(string(b)), "paysim: ")
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(msg)
	}
	return msg, nil
}

// cut splits KEY=VALUE, KEY required.
func cut(v, want string) (string, string, error) {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("want %s", want)
	}
	return k, val, nil
}

func parseBalance(v string) (func(*Sim) error, error) {
	var curs []pipeline.Currency // nil: each the state shows
	amount := v
	if k, val, ok := strings.Cut(v, "="); ok {
		c := pipeline.Currency(k)
		if !c.Valid() {
			return nil, fmt.Errorf("unknown currency %q", k)
		}
		curs, amount = []pipeline.Currency{c}, val
	}
	minor, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || minor < 0 {
		return nil, fmt.Errorf("want [CUR=]MINOR, MINOR an integer >= 0 (minor units), not %q", v)
	}
	return func(s *Sim) error {
		curs := curs
		if curs == nil {
			curs = s.balanceCurrencies()
		}
		for _, c := range curs {
			s.Infinia.SetBalance(c, minor)
		}
		return nil
	}, nil
}

// BindingNone is the --binding status of a seller Infinia does not know.
const BindingNone = "NONE"

func parseBinding(v string) (func(*Sim) error, error) {
	id, st, err := cut(v, "INFINIA_ID=STATUS")
	if err != nil {
		return nil, err
	}
	st = strings.ToUpper(st)
	if !slices.Contains([]string{"ACTIVE", "PENDING", "REJECTED", "FROZEN", BindingNone}, st) {
		return nil, fmt.Errorf("status %q: want ACTIVE, PENDING, REJECTED, FROZEN or NONE", st)
	}
	return func(s *Sim) error {
		if st == BindingNone {
			s.Infinia.RemoveBinding(id)
		} else {
			s.Infinia.SetBinding(id, st)
		}
		return nil
	}, nil
}

func parseAvailable(v string) (func(*Sim) error, error) {
	k, amount, err := cut(v, "INFINIA_ID:CUR=MINOR")
	id, cur, ok := strings.Cut(k, ":")
	if err != nil || !ok || id == "" || !pipeline.Currency(cur).Valid() {
		return nil, fmt.Errorf("want INFINIA_ID:CUR=MINOR, CUR a currency code, not %q", v)
	}
	minor, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || minor < 0 {
		return nil, fmt.Errorf("want INFINIA_ID:CUR=MINOR, MINOR an integer >= 0 (minor units), not %q", v)
	}
	return func(s *Sim) error { s.Infinia.SetAvailable(id, pipeline.Currency(cur), minor); return nil }, nil
}

func parseRefuseOrder(v string) (func(*Sim) error, error) {
	order, reason, err := cut(v, "ORDER=REASON")
	if err != nil {
		return nil, err
	}
	return func(s *Sim) error { s.Infinia.RefuseOrder(order, reason); return nil }, nil
}

func sellerSwitch(lose bool) func(string) (func(*Sim) error, error) {
	return func(v string) (func(*Sim) error, error) {
		if v == "" || strings.ContainsAny(v, "= ") {
			return nil, fmt.Errorf("want an Infinia seller id, not %q", v)
		}
		return func(s *Sim) error { s.Infinia.LoseFilesOf(v, lose); return nil }, nil
	}
}

func parseRefuseStatus(v string) (func(*Sim) error, error) {
	id, rest, err := cut(v, "INFINIA_ID=CODE[:MESSAGE]")
	if err != nil {
		return nil, err
	}
	code, msg, _ := strings.Cut(rest, ":")
	if msg == "" {
		msg = "refused by paysim (--refuse-status-of)"
	}
	return func(s *Sim) error { s.Infinia.RefuseStatusOf(id, code, msg); return nil }, nil
}

func parseFailShares(v string) (func(*Sim) error, error) {
	id, reason, err := cut(v, "INFINIA_ID=REASON")
	if err != nil {
		return nil, err
	}
	return func(s *Sim) error { s.Infinia.FailSharesOf(id, reason); return nil }, nil
}

// weChatKnows reports an error unless the simulator created txn (SeedDay).
func (s *Sim) weChatKnows(txn string) error {
	s.seeded.mu.Lock()
	defer s.seeded.mu.Unlock()
	if !slices.ContainsFunc(s.seeded.wechat, func(t weChatTxn) bool { return t.id == txn }) {
		return fmt.Errorf("WeChat Pay holds no transaction %s (see /paysim/state)", txn)
	}
	return nil
}

func parseWeChatRefuse(v string) (func(*Sim) error, error) {
	txn, code, err := cut(v, "TRANSACTION=CODE")
	if err != nil {
		return nil, err
	}
	return func(s *Sim) error {
		if err := s.weChatKnows(txn); err != nil {
			return err
		}
		if code == "" {
			s.WeChat.Cure(txn)
		} else {
			s.WeChat.Poison(txn, code)
		}
		return nil
	}, nil
}

func parseWeChatRefund(v string) (func(*Sim) error, error) {
	txn, amount, err := cut(v, "TRANSACTION=MINOR")
	if err != nil {
		return nil, err
	}
	minor, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || minor <= 0 {
		return nil, fmt.Errorf("want TRANSACTION=MINOR, MINOR an integer > 0 (minor units), not %q", v)
	}
	return func(s *Sim) error {
		if err := s.weChatKnows(txn); err != nil {
			return err
		}
		if f := s.WeChat.Frozen(txn); minor > f {
			return fmt.Errorf("transaction %s holds %d, less than %d", txn, f, minor)
		}
		s.WeChat.Refund(txn, minor)
		return nil
	}, nil
}

func parseCloseReceiver(v string) (func(*Sim) error, error) {
	account, reason, explicit := strings.Cut(v, "=")
	if !explicit {
		account, reason = "", v
	}
	if explicit && account == "" {
		return nil, errors.New("want [ACCOUNT=]REASON")
	}
	return func(s *Sim) error {
		to := account
		if to == "" {
			to = s.Config.WeChatReceiverAccount
		}
		s.WeChat.FailReceiver(to, reason)
		return nil
	}, nil
}

func parsePayProtocolStatus(v string) (func(*Sim) error, error) {
	no, name, err := cut(v, "OUT_TRADE_NO=STATUS")
	if err != nil {
		return nil, err
	}
	st := payprotocol.PaymentStatus(-1)
	for i := payprotocol.PaymentPaid; i.Valid(); i++ {
		if strings.ReplaceAll(i.String(), " ", "-") == strings.ToLower(strings.ReplaceAll(name, " ", "-")) {
			st = i
		}
	}
	if !st.Valid() {
		return nil, fmt.Errorf("status %q: want paid, pending, block-confirmation, partially-paid, failed or refunded", name)
	}
	return func(s *Sim) error {
		if _, ok := s.PayProtocol.Payment(no); !ok {
			return fmt.Errorf("no payment %s at Pay Protocol (see /paysim/state)", no)
		}
		return s.PayProtocol.SetPaymentStatus(no, st)
	}, nil
}

// currencyList names Currencies, comma-separated, for the help.
func currencyList() string {
	names := make([]string, len(Currencies))
	for i, c := range Currencies {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}
