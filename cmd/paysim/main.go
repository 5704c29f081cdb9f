// Command paysim runs the provider simulator as its own process: the
// stateful fakes of Infinia Pay (HTTP API and SFTP server) and Pay Protocol
// on loopback ports, with fault injection. They are simulations, for trying the job
// against something that behaves like the providers; paysim prints the
// environment the job needs to reach them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "paysim: %v\n", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("paysim", flag.ContinueOnError)
	dir := fs.String("dir", "paysim-data", "directory for keys, known_hosts and the SFTP root")
	httpAddr := fs.String("http-addr", "127.0.0.1:8700", "Infinia API listen address")
	sftpAddr := fs.String("sftp-addr", "127.0.0.1:8722", "SFTP listen address")
	faults := fs.String("faults", "", `fault rules, e.g. "revenue-sharing/request:lost@1;*:5xx~0.05;upload:disconnect@2,bytes=4096"`)
	faultsFile := fs.String("faults-file", "", "file of fault rules, one per line")
	seedN := fs.Uint64("seed", 1, "seed of the probabilistic faults")
	polls := fs.Int("polls", 2, "status polls that answer PROCESSING before the final status")
	sellers := fs.Int("bind-sellers", 50, "bind the seed's sellers 1..N (ACTIVE), as settle seed names them")
	balance := fs.Int64("balance", 1_000_000_000_00, "platform balance in minor units, in every currency")
	platformDB := fs.String("platform-db", "", "with -date: create at the simulated Pay Protocol the payments (in every status) of the payprotocol orders settle seed wrote there")
	date := fs.String("date", "", "business date of -platform-db's orders, YYYY-MM-DD")
	tz := fs.String("tz", "Asia/Shanghai", "time zone of -date")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec := *faults
	if *faultsFile != "" {
		b, err := os.ReadFile(*faultsFile)
		if err != nil {
			return err
		}
		spec += "\n" + string(b)
	}
	rules, err := fault.ParseRules(spec)
	if err != nil {
		return err
	}
	sim, err := paysim.Start(paysim.Options{Dir: *dir, Faults: fault.New(*seedN, rules...), Polls: *polls,
		HTTPAddr: *httpAddr, SFTPAddr: *sftpAddr})
	if err != nil {
		return err
	}
	defer sim.Close()
	for i := 1; i <= *sellers; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range []pipeline.Currency{"CNY", "EUR", "HKD", "JPY", "KWD", "USD"} {
		sim.Infinia.SetBalance(cur, *balance)
	}
	if *platformDB != "" {
		n, err := seedPayments(ctx, sim, *platformDB, *date, *tz)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# created %d Pay Protocol payments for the payprotocol orders of %s\n", n, *date)
	}
	fmt.Fprintf(stdout, "# paysim: simulated Infinia Pay (API %s, SFTP %s), %d fault rules; Ctrl-C to stop\n",
		sim.Config.InfiniaURL, sim.Config.SFTPAddr, len(rules))
	fmt.Fprintln(stdout, "# the job's configuration:")
	for _, kv := range sim.Config.Env() {
		fmt.Fprintf(stdout, "export %s\n", kv)
	}
	<-ctx.Done()
	return nil
}

// seedPayments creates the simulated Pay Protocol payments of a seeded day.
func seedPayments(ctx context.Context, sim *paysim.Sim, url, date, tz string) (int, error) {
	d, err := pipeline.ParseDate(date)
	if err != nil {
		return 0, fmt.Errorf("-date: %w", err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return 0, fmt.Errorf("-tz: %w", err)
	}
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return sim.SeedPayProtocol(ctx, db, settlesql.SourceQuery, pipeline.WindowOf(d, loc))
}
