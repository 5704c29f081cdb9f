package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

func receiversCommand(cfg *config) *cli.Command {
	flags := weChatFlags()
	sub := func(name, usage string, act func(*cli.Context, *weChatSetup, string) error) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, ArgsUsage: "SUB_MCHID", Flags: flags,
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return pipeline.Errorf(pipeline.KindUsage, "receivers "+name, "want exactly one SUB_MCHID (flags first)")
				}
				w, err := cfg.weChatFromFlags(c)
				if err != nil {
					return err
				}
				if w == nil {
					return pipeline.Errorf(pipeline.KindUsage, "--"+flagWXURL, "required for the receivers commands")
				}
				return act(c, w, c.Args().First())
			}}
	}
	return &cli.Command{
		Name:  "receivers",
		Usage: "manage the platform's WeChat Pay receiver relationship with a sub-merchant, outside the nightly run",
		Subcommands: []*cli.Command{
			sub("add", "add the platform's receiver to a sub-merchant (it is paid once WeChat's review makes it EFFECTIVE); one already there is shown, one whose review failed is added again",
				func(c *cli.Context, w *weChatSetup, subMchID string) error {
					r := w.receiver
					r.SubMchID = subMchID
					// A lost answer is resolved by the result query, not
					// reported. One whose review failed is added again (WeChat
					// takes it again; it showed the failed state as "added").
					st, added, err := w.client.ReAddReceiver(c.Context, r)
					if err != nil {
						return fmt.Errorf("add receiver at %s: %w", subMchID, err)
					}
					if !added {
						// Under review or approved: WeChat Pay takes no
						// second add, and none was sent.
						fmt.Fprintf(cfg.stdout, "receiver %s already there at sub-merchant %s: %s (nothing sent)\n", r.Account, subMchID, st.State)
						return nil
					}
					fmt.Fprintf(cfg.stdout, "receiver %s added at sub-merchant %s: %s\n", r.Account, subMchID, st.State)
					return nil
				}),
			sub("status", "show the platform receiver's state at a sub-merchant",
				func(c *cli.Context, w *weChatSetup, subMchID string) error {
					st, err := w.client.ReceiverResult(c.Context, wechatpay.ReceiverRef{SubMchID: subMchID, AppID: w.receiver.AppID,
						SubAppID: w.receiver.SubAppID, Type: w.receiver.Type, Account: w.receiver.Account})
					if errors.Is(err, wechatpay.ErrNotFound) {
						// WeChat's definite answer, not a failure to retry
						// (it was exit 1, "retry is safe": found by an
						// operator's review).
						fmt.Fprintf(cfg.stdout, "receiver %s at sub-merchant %s: not added (WeChat Pay does not know it; settle receivers add %s adds it)\n",
							w.receiver.Account, subMchID, subMchID)
						return nil
					}
					if err != nil {
						return fmt.Errorf("receiver at %s: %w", subMchID, err)
					}
					fmt.Fprintf(cfg.stdout, "receiver %s at sub-merchant %s: %s %s\n", w.receiver.Account, subMchID, st.State, st.FailReason)
					return nil
				}),
			sub("delete", "remove the platform's receiver from a sub-merchant (it can no longer be paid)",
				func(c *cli.Context, w *weChatSetup, subMchID string) error {
					err := w.client.DeleteReceiver(c.Context, wechatpay.ReceiverRef{SubMchID: subMchID, Type: w.receiver.Type, Account: w.receiver.Account})
					if errors.Is(err, wechatpay.ErrNotFound) {
						// Not there (never added, or a lost answer's delete
						// removed it): what was asked holds.
						fmt.Fprintf(cfg.stdout, "receiver %s at sub-merchant %s: not there, nothing to delete\n", w.receiver.Account, subMchID)
						return nil
					}
					if err != nil {
						return fmt.Errorf("delete receiver at %s: %w", subMchID, err)
					}
					fmt.Fprintf(cfg.stdout, "receiver %s deleted at sub-merchant %s\n", w.receiver.Account, subMchID)
					return nil
				}),
		},
	}
}
