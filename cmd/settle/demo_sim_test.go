package main

import (
	"context"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/wechatpay"
)

// TestDemoSimulatorAnswersAtOnce checks the demo's simulator: by default a
// request's first answer is already final (the "instant answers",
// so that the demo waits on the machine, not on polls under WeChat Pay's
// 300 requests a second), and --polls N makes a request's answer
// PROCESSING, and N queries after it, before the final status.
func TestDemoSimulatorAnswersAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, polls := range []int{0, 1, 3} {
		sim, err := startDemoSimulator(t.TempDir(), 1, polls)
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		const sub, txn = "1900000109", "4200000000000000000000000001"
		sim.WeChat.AddTransaction(sub, txn, "CNY", 1000)
		client, err := wechatpay.New(sim.WeChat.ClientConfig(sim.Config.WeChatURL))
		if err != nil {
			t.Fatal(err)
		}
		const no = "DEMOTEST1"
		o, err := client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: sub, TransactionID: txn, OutOrderNo: no, Description: "demo"})
		processing := 0
		for ; err == nil && o.State == wechatpay.StateProcessing && processing < 10; processing++ {
			o, err = client.QueryOrder(ctx, sub, txn, no)
		}
		if err != nil || o.State != wechatpay.StateFinished {
			t.Fatalf("--polls %d: %+v %v, want FINISHED", polls, o, err)
		}
		want := 0
		if polls > 0 {
			want = 1 + polls // the request's own answer, then the queries'
		}
		if processing != want {
			t.Errorf("--polls %d: %d PROCESSING answers before FINISHED, want %d", polls, processing, want)
		}
	}
}

// TestDemoBadRowsFitTheDay: unset, --bad-rows is 9 (one of each kind), or
// a tenth of a day under 90 orders (9 of 10 would be over the run's reject limit, and the
// demo would end refusing its day); given, it is what was given.
func TestDemoBadRowsFitTheDay(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 9}, {[]string{"--orders", "90"}, 9}, {[]string{"--orders", "89"}, 8}, {[]string{"--orders", "10"}, 1},
		{[]string{"--orders", "9"}, 0}, {[]string{"--orders", "0"}, 0}, {[]string{"--orders", "10", "--bad-rows", "10"}, 10},
		{[]string{"--bad-rows", "0"}, 0},
	} {
		cmd := demoCommand(&config{})
		got := -1
		cmd.Action = func(c *cli.Context) error { got = demoBadRows(c); return nil }
		app := &cli.App{Commands: []*cli.Command{cmd}}
		if err := app.Run(append([]string{"settle", "demo"}, c.args...)); err != nil || got != c.want {
			t.Errorf("%v: %d bad rows (%v), want %d", c.args, got, err, c.want)
		}
	}
}
