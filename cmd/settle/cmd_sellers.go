package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func sellersCommand(cfg *config) *cli.Command {
	flags := append(databaseFlags(), infiniaFlags()...)
	return &cli.Command{
		Name:  "sellers",
		Usage: "Infinia Pay account bindings: bind a seller, refresh statuses, receive the status webhook; close a seller's carried balance settled outside settle",
		Subcommands: []*cli.Command{
			{
				Name:      "bind",
				Usage:     "send a seller's information with the Account Binding API and print the redirect URL",
				ArgsUsage: "SELLER_ID",
				Flags: append(flags,
					&cli.StringFlag{Name: "cert-no", Usage: "the seller's registration or identity number (default: the seller id)"},
					&cli.StringFlag{Name: "store-url", Usage: "the seller's store URL (required: Infinia's binding takes it)"},
					&cli.StringFlag{Name: "currency", Value: "USD", Usage: "the account's currency"},
					&cli.StringFlag{Name: "backlink-url", Usage: "where Infinia sends the seller back to"},
					sellersQueryFlag(),
				),
				Action: func(c *cli.Context) error { return cfg.sellersBind(c) },
			},
			{
				Name:   "sync",
				Usage:  "refresh the binding status of every seller the ledger knows",
				Flags:  flags,
				Action: func(c *cli.Context) error { return cfg.sellersSync(c) },
			},
			{
				Name:  "webhook",
				Usage: "serve Infinia's seller-status webhook, recording statuses in the ledger",
				Flags: append(flags, &cli.StringFlag{Name: "listen", EnvVars: []string{"SETTLE_WEBHOOK_LISTEN"}, Value: "127.0.0.1:8080",
					Usage: "address to listen on (in a pod, :8080 for the Service to reach it)"},
					&cli.StringFlag{Name: "path", EnvVars: []string{"SETTLE_WEBHOOK_PATH"}, Value: "/infinia/seller-status", Usage: "path of the webhook"}),
				Action: func(c *cli.Context) error { return cfg.sellersWebhook(c) },
			},
			{
				Name: "close",
				Usage: "record that a person settled a seller's carried balance in one currency outside settle (paid it, collected it, or forgave it): " +
					"the balance is closed to 0, moved to the platform's books, and no run carries, pays or holds it again",
				Flags: append(ledgerFlags(ledgerURLUsage),
					&cli.StringFlag{Name: "seller", Usage: "the seller (the platform's id, as sellers.csv and settle status give it) (required)"},
					&cli.StringFlag{Name: "currency", Usage: "the currency of the balance (required)"},
					&cli.StringFlag{Name: "note", Usage: "who settled it or decided to forgive it, how, and the reference (required)"},
					&cli.StringFlag{Name: flagActor, EnvVars: []string{"SETTLE_ACTOR"}, Usage: "who decides this, recorded with the close and shown by settle status (default: the OS user running settle; \"unknown\" when it has none)"},
					&cli.BoolFlag{Name: "force", Usage: "close the balance of a seller the platform still gives (the latest run read it): its next revenue shares would pay it, or net what it owes"},
					&cli.BoolFlag{Name: "dry-run", Usage: "say what would be closed, and what refuses it; record nothing"}),
				Action: func(c *cli.Context) error { return cfg.sellersClose(c) },
			},
		},
	}
}

// sellersClose closes a seller's carried balance in one currency that a
// person settled outside settle, or forgave (ledger.CloseBalance): dated
// the latest date run (ledger.CloseRun), under that date's lock, so that
// no run of it begins meanwhile (exit 75 while a process holds it, or any
// other date's). Said again, it says the balance was closed before and
// records nothing.
func (cfg *config) sellersClose(c *cli.Context) error {
	seller := strings.TrimSpace(c.String("seller"))
	if seller == "" || c.NArg() > 0 {
		return pipeline.Errorf(pipeline.KindUsage, "--seller", "required: the seller whose carried balance to close (and no other argument)")
	}
	if c.String("currency") == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--currency", "required: the currency of the balance to close")
	}
	cur, err := pipeline.ParseCurrency(c.String("currency"))
	if err != nil {
		return pipeline.E(pipeline.KindUsage, "--currency", err)
	}
	if strings.TrimSpace(c.String("note")) == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--note", "required: who settled the balance outside settle, or decided to forgive it, how, and the reference")
	}
	actor, err := actorOf(c)
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	l, err := cfg.openLedger(c.Context, c, !dry)
	if err != nil {
		return err
	}
	defer l.Close()
	l.SetActor(actor)
	run, err := l.CloseRun(c.Context, seller)
	if err != nil {
		return err
	}
	if !dry {
		release, err := l.LockDate(c.Context, run.Key.Date)
		if err != nil {
			return err
		}
		defer release()
	}
	bc, err := l.CloseBalance(c.Context, run, seller, cur, c.String("note"), c.Bool("force"), dry)
	if err != nil {
		return err
	}
	balance := pipeline.Money{Minor: bc.Balance, Currency: cur}
	switch {
	case bc.Before != nil:
		r := bc.Before
		fmt.Fprintf(cfg.stdout, "the carried balance of %s in %s was closed before (%s) at %s by %s: %s\nnothing recorded: no balance of it is carried\n",
			seller, cur, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	case dry:
		fmt.Fprintf(cfg.stdout, "dry run: would close the carried balance of %s in %s: %s (%d entries, since %s), recorded on %s as %s: %s\nnothing recorded\n",
			seller, cur, balance, bc.Entries, bc.Since, bc.Date, bc.Key, bc.Reason)
	default:
		r := bc.Resolution
		fmt.Fprintf(cfg.stdout, "closed the carried balance of %s in %s: %s (%d entries, since %s), recorded on %s as %s at %s by %s: %s\n",
			seller, cur, balance, bc.Entries, bc.Since, bc.Date, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
		fmt.Fprintf(cfg.stdout, "no run carries, pays or holds it again; settle status --date %s lists the close, and settle report --date %s writes the date's reports with it "+
			"(a run that ended needing a person for the balance stays so until its date is run again: settle run --date D)\n", bc.Date, bc.Date)
	}
	return nil
}

// sellerTools opens the ledger and the Infinia client the seller commands use.
func (cfg *config) sellerTools(c *cli.Context) (*ledger.Ledger, *infiniaSetup, func(), error) {
	inf, err := cfg.infiniaFromFlags(c)
	if err != nil {
		return nil, nil, nil, err
	}
	if inf == nil {
		return nil, nil, nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagInfiniaURL, "required for the sellers commands")
	}
	l, err := cfg.openLedger(c.Context, c, true)
	if err != nil {
		return nil, nil, nil, err
	}
	return l, inf, func() { l.Close() }, nil
}

func (cfg *config) sellersBind(c *cli.Context) error {
	id := c.Args().First()
	if id == "" || c.NArg() != 1 {
		return pipeline.Errorf(pipeline.KindUsage, "sellers bind", "want exactly one SELLER_ID")
	}
	l, inf, done, err := cfg.sellerTools(c)
	if err != nil {
		return err
	}
	defer done()
	url, err := databaseURL(c)
	if err != nil {
		return err
	}
	src, err := sourceURL(c, url)
	if err != nil {
		return err
	}
	db, err := openDB(c.Context, src)
	if err != nil {
		return err
	}
	defer db.Close()
	q, name, err := sellersQuery(c)
	if err != nil {
		return err
	}
	var seller *pipeline.Seller
	err = sellerSource(db, q, name, nil).Sellers(c.Context, []string{id}, func(s pipeline.Seller) error { seller = &s; return nil })
	if err != nil {
		return err
	}
	if seller == nil {
		return pipeline.Errorf(pipeline.KindUsage, "sellers bind", "seller %q is not in the platform's sellers", id)
	}
	infiniaID := seller.Account(infiniapay.SellerAccount)
	if infiniaID == "" {
		return pipeline.Errorf(pipeline.KindUsage, "sellers bind", "seller %s has no Infinia seller id", id)
	}
	certNo := c.String("cert-no")
	if certNo == "" {
		certNo = seller.ID
	}
	cur, err := pipeline.ParseCurrency(c.String("currency"))
	if err != nil {
		return pipeline.E(pipeline.KindUsage, "--currency", err)
	}
	if c.String("store-url") == "" {
		return pipeline.Errorf(pipeline.KindUsage, "--store-url", "required: Infinia's account binding takes the seller's store URL")
	}
	req := infiniapay.BindRequest{SellerID: infiniaID,
		SellerCertNo: certNo, SellerName: seller.Name, StoreName: seller.Name, StoreURL: c.String("store-url"),
		EntityType: seller.EntityType, Country: seller.Country, Currency: cur, BacklinkURL: c.String("backlink-url")}
	if err := req.Check(); err != nil {
		// Infinia refuses it (SYS-002, naming no field) however often it
		// is sent: the seller's platform data must say it as Infinia takes it.
		return pipeline.E(pipeline.KindUsage, "sellers bind", fmt.Errorf("bind %s: the platform's sellers give %w", id, err))
	}
	req.RequestNo = bindRequestNo(cfg.clock(), seller.ID, req)
	reqNo := req.RequestNo
	redirect, err := inf.client.BindAccount(c.Context, req)
	if errors.Is(err, infiniapay.ErrTooLarge) {
		// Sent again, it would be as long: the seller's data or the flags
		// must be shorter (exit 2, not a retry).
		return pipeline.E(pipeline.KindUsage, "sellers bind", fmt.Errorf("bind %s: %w (shorten --store-url, --backlink-url or the seller's name)", id, err))
	}
	if err != nil {
		return fmt.Errorf("bind %s: %w", id, err)
	}
	if err := l.SetBinding(c.Context, pipeline.Binding{SellerID: seller.ID, ProviderSellerID: infiniaID, Status: "PENDING", RequestNo: reqNo, Source: "bind"}); err != nil {
		return err
	}
	fmt.Fprintf(cfg.stdout, "binding requested for %s (Infinia %s, requestNo %s)\nsend the seller to: %s\n", id, infiniaID, reqNo, redirect)
	return nil
}

// bindRequestNo is the requestNo of binding request req of the platform's
// seller sellerID made at now: one a seller, day and content. The same
// request again is replayed; a corrected one (another currency, say) is a
// new request (it reused the first's requestNo: found by a review). The
// day is now's in UTC, not in the machine's zone: the same bind made again
// from a machine in another zone (an operator's laptop, a pod) made
// another request near midnight. Nothing records the requestNo before it
// is sent, so a bind made again after the change may be a new request
// for the hours the zones' dates differ, as one made again the next day
// is: a binding request moves no money.
func bindRequestNo(now time.Time, sellerID string, req infiniapay.BindRequest) string {
	return infiniapay.BindingRequestNo("ABR", pipeline.DateOf(now.UTC()), strings.Join([]string{sellerID, req.SellerID, req.SellerCertNo,
		req.SellerName, req.StoreName, req.StoreURL, req.EntityType, req.Country, string(req.Currency), req.BacklinkURL}, "\x00"))
}

func (cfg *config) sellersSync(c *cli.Context) error {
	l, inf, done, err := cfg.sellerTools(c)
	if err != nil {
		return err
	}
	defer done()
	known, err := l.KnownSellers(c.Context)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cfg.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "seller\tinfinia id\tstatus\twas")
	problems := &pipeline.Problems{Summary: "bindings Infinia would not give"}
	for _, s := range known {
		b, err := inf.client.BindingStatus(c.Context, pipeline.QueryRequestNo("ABQ"), s.ProviderSellerID)
		status := b.Status
		if errors.Is(err, infiniapay.ErrNotFound) {
			status, err = "UNKNOWN", nil
		}
		if err != nil && infiniapay.SubjectOnly(err) {
			// This seller's answer alone: the others are refreshed
			// (one stopped them all: found by a review).
			problems.Add(fmt.Sprintf("seller %s (Infinia %s): %v", s.SellerID, s.ProviderSellerID, err))
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.SellerID, s.ProviderSellerID, "NOT REFRESHED", s.Status)
			continue
		}
		if err != nil {
			return fmt.Errorf("binding of %s: %w", s.SellerID, err)
		}
		if err := l.SetBinding(c.Context, pipeline.Binding{SellerID: s.SellerID, ProviderSellerID: s.ProviderSellerID, Status: status, Source: "query"}); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.SellerID, s.ProviderSellerID, status, s.Status)
	}
	tw.Flush()
	fmt.Fprintf(cfg.stdout, "%d sellers refreshed\n", len(known)-problems.Count())
	return problems.NeedsPerson()
}

// bindingWebhook is the seller-status webhook handler, recording statuses
// in the ledger; deliveries are deduplicated across restarts by requestNo,
// seller and notified status (the ledger's, before the confirmation), and
// only those the binding status query confirmed are recorded as dealt
// with (see infiniapay.WebhookHandler). A notification is only a prompt:
// the status recorded is the binding status query's answer.
func bindingWebhook(l *ledger.Ledger, inf *infiniaSetup) (http.Handler, error) {
	confirm := func(ctx context.Context, infiniaID string) (string, error) {
		// A seller the ledger has never known is not asked about (a
		// notification anyone with our public key can make had settle
		// ask Infinia about any id and record it; found by a security
		// review): the run that first pays it asks Infinia itself.
		if _, ok, err := l.SellerOfInfiniaID(ctx, infiniaID); err != nil || !ok {
			return "", cmp.Or(err, infiniapay.ErrNotOurs)
		}
		b, err := inf.client.BindingStatus(ctx, pipeline.QueryRequestNo("ABQ"), infiniaID)
		return b.Status, err
	}
	h := infiniapay.WebhookHandler(inf.ourKey, inf.theirKey, confirm, func(ctx context.Context, st infiniapay.SellerStatus) error {
		sellerID, _, err := l.SellerOfInfiniaID(ctx, st.SellerID)
		if err != nil {
			return err
		}
		if err := l.SetBinding(ctx, pipeline.Binding{SellerID: sellerID, ProviderSellerID: st.SellerID, Status: st.Status, RequestNo: st.RequestNo, Source: "webhook"}); err != nil {
			return err
		}
		if !st.Confirmed() {
			return nil // the query's answer recorded; the notification is to be delivered again
		}
		return l.RecordDelivery(ctx, st.RequestNo, st.SellerID, st.Notified)
	})
	// A notification dealt with before a restart is not confirmed again.
	h.Seen = func(ctx context.Context, st infiniapay.SellerStatus) (bool, error) {
		return l.Delivered(ctx, st.RequestNo, st.SellerID, st.Notified)
	}
	return h, nil
}

// webhookLimits bound what one caller of the webhook can hold of it: the
// listener faces the network and its notifications may be unsigned, so a
// caller that sends its headers or its body slowly (or never), or keeps an
// idle connection open, must not hold a connection and a goroutine for
// ever, and a delivery whose confirmation hangs is answered (503: Infinia
// delivers it again) rather than waited on without end.
type webhookLimits struct {
	header  time.Duration // reading a request's headers
	request time.Duration // reading a whole request, body included
	handler time.Duration // confirming and recording one delivery
	idle    time.Duration // a kept-alive connection between requests
}

// defaultWebhookLimits are sellers webhook's limits. The handler's bound
// leaves the binding status query its retries; the write deadline is set a
// little past it, so that the 503 still reaches the caller.
var defaultWebhookLimits = webhookLimits{header: 10 * time.Second, request: 30 * time.Second, handler: 90 * time.Second, idle: time.Minute}

// webhookMaxHeader bounds a request's headers (the body is bounded by the
// handler, infiniapay's 1 MiB).
const webhookMaxHeader = 64 << 10

// newWebhookServer is the webhook's server on addr, with lim's deadlines:
// the handler's context is cancelled, and 503 answered, once lim.handler is
// over.
func newWebhookServer(addr string, h http.Handler, lim webhookLimits) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.TimeoutHandler(h, lim.handler, "not recorded in time, deliver again"),
		ReadHeaderTimeout: lim.header,
		ReadTimeout:       lim.request,
		WriteTimeout:      lim.request + lim.handler,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    webhookMaxHeader,
	}
}

func (cfg *config) sellersWebhook(c *cli.Context) error {
	l, inf, done, err := cfg.sellerTools(c)
	if err != nil {
		return err
	}
	defer done()
	h, err := bindingWebhook(l, inf)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+c.String("path"), h)
	srv := newWebhookServer(c.String("listen"), mux, defaultWebhookLimits)
	go func() {
		<-c.Context.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	// Listen first: "listening on" was printed before the address was
	// taken, and a port in use then failed the command (exit 1, "a retry
	// is safe") right after saying it listened.
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return pipeline.E(pipeline.KindUsage, "--listen", err)
	}
	fmt.Fprintf(cfg.stdout, "listening on %s%s\n", ln.Addr(), c.String("path"))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
