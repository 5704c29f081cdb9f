package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/pipeline"
)

// parsing lets one run at a time parse its command line: urfave/cli writes
// its package-level help flag (cli.HelpFlag) and sets up its package-level
// help command while it parses. A command's action releases it, so runs in
// one process (the tests') parse in turn and work side by side.
var parsing sync.Mutex

// run builds the command line application and runs it with args. It reads
// the environment only through getenv. It is safe to call from several
// goroutines at once.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runAt(ctx, nil, args, getenv, stdout, stderr)
}

// escapeOutput makes what the commands print control-safe: it is theirs
// and the providers' words, and no control sequence of a provider's
// reaches the operator's terminal, on stdout or stderr (the logger's lines
// go through controlSafe too, and exitCode's last line). The live progress
// line on a terminal (cfg.live, set by logger) stays the raw stderr: it is
// settle's own - a stage's name and counts - and redraws itself with a
// carriage return and ESC [K, which escaped reached the terminal as text
// ("\x0d\x1b[Kupload: 2 of 7, ...").
func (c *config) escapeOutput() {
	c.stdout, c.stderr = controlSafe(c.stdout), controlSafe(c.stderr)
}

// runAt is run with the clock now (nil: the machine's), for tests of what
// a run does on its own date ("yesterday").
func runAt(ctx context.Context, now func() time.Time, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	parsing.Lock()
	var once sync.Once
	parsed := func() { once.Do(parsing.Unlock) }
	defer parsed()
	cfg := &config{getenv: getenv, stdout: stdout, stderr: stderr, now: now, args: args}
	cfg.logger() // decide the log format before anything prints
	cfg.escapeOutput()
	if f := getenv(logFormatEnv); f != "" && f != "json" && f != "text" {
		// Taken as text, it left a pod's log without its JSON lines (the
		// last one, with exit_code, is what alerts read), silently.
		return cfg.logFailure(pipeline.Errorf(pipeline.KindUsage, logFormatEnv,
			"%q: want json or text (unset: JSON when stdout is not a terminal, text on one)", f))
	}
	stopTimeout, err := stopTimeoutOf(getenv)
	if err != nil {
		return cfg.logFailure(err)
	}
	app := &cli.App{
		Name:                 "settle",
		Usage:                "settle a marketplace's orders with its payment providers, one business day at a time",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		Description:          exitCodesHelp,
		// A word that is no command is a usage error (exit 2), not help.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return pipeline.Errorf(pipeline.KindUsage, "usage", "unknown command %q (settle --help lists the commands)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			runCommand(cfg),
			statusCommand(cfg),
			reportCommand(cfg),
			repriceCommand(cfg),
			resolveCommand(cfg),
			migrateCommand(cfg),
			seedCommand(cfg),
			demoCommand(cfg),
			sellersCommand(cfg),
			receiversCommand(cfg),
			versionCommand(cfg),
		},
		// Errors come back to main, which maps them to exit codes after
		// cleanup: the library must never exit by itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(err)
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	app.Action = afterParsing(app.Action, parsed)
	noStrayArguments(app.Commands, "")
	releaseWhenParsed(app.Commands, parsed)
	err = runStopping(ctx, stopTimeout, func() error { return app.RunContext(ctx, args) })
	cfg.reportCut(err)
	if err != nil && pipeline.KindOf(err) == pipeline.KindFailed && isFlagError(err) {
		err = usageError(err)
	}
	// urfave/cli's own ExitCoder errors are help topics that do not
	// exist ("settle help nosuch", "settle sellers nosuch").
	var exit cli.ExitCoder
	if err != nil && pipeline.KindOf(err) == pipeline.KindFailed && errors.As(err, &exit) {
		err = pipeline.Errorf(pipeline.KindUsage, "usage", "%v (settle --help lists the commands)", err)
	}
	return cfg.logFailure(interrupted(ctx, cfg.whyReadOnly(ctx, err)))
}

// releaseWhenParsed makes every command's action, subcommands' too, call
// parsed first.
func releaseWhenParsed(cmds []*cli.Command, parsed func()) {
	for _, c := range cmds {
		c.Action = afterParsing(c.Action, parsed)
		releaseWhenParsed(c.Subcommands, parsed)
	}
}

// noStrayArguments makes each command of cmds (and of their subcommands)
// that takes no arguments (no ArgsUsage) refuse any, exit 2: urfave/cli
// ends the flags at the first word that is not one, so "settle status
// --date D x -o json" showed text, its "-o json" silently an argument
// (found by an operator's review: status and migrate took stray words),
// and "settle run 2026-11-23" must not settle yesterday.
func noStrayArguments(cmds []*cli.Command, parent string) {
	for _, c := range cmds {
		name := strings.TrimSpace(parent + " " + c.Name)
		noStrayArguments(c.Subcommands, name)
		if c.Action == nil || c.ArgsUsage != "" {
			continue
		}
		action := c.Action
		c.Action = func(ctx *cli.Context) error {
			if ctx.NArg() > 0 {
				return pipeline.Errorf(pipeline.KindUsage, "usage", "%s takes no arguments, got %q (flags go before any other word; a date is --date YYYY-MM-DD)",
					name, ctx.Args().First())
			}
			return action(ctx)
		}
	}
}

// afterParsing returns action calling parsed first (nil stays nil).
func afterParsing(action cli.ActionFunc, parsed func()) cli.ActionFunc {
	if action == nil {
		return nil
	}
	return func(c *cli.Context) error {
		parsed()
		return action(c)
	}
}

// isFlagError recognises the errors urfave/cli returns for missing required
// flags and unknown flags, which carry no type of their own.
func isFlagError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Required flag") || strings.Contains(msg, "flag provided but not defined")
}

// yesterday is the default business date: the day that ended at the
// start of today in loc - the date of the last instant before today
// began. That is the calendar day before today but where a day was
// skipped (Pacific/Apia crossed the date line: 2011-12-29 was followed by
// 2011-12-31), where "today minus one" names a day with no hours, and the
// day that did end would never be settled by a nightly run.
func yesterday(now time.Time, loc *time.Location) pipeline.Date {
	start := pipeline.DateOf(now.In(loc)).Time(loc)
	return pipeline.DateOf(start.Add(-time.Nanosecond).In(loc))
}
