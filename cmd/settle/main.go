// Command settle is the batch settlement job: it settles one business day of
// marketplace orders (extract, transform, upload, distribute, reconcile) and
// can be re-run safely for any past date. "settle --help" lists the
// commands; the README documents the contract and the exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/settlekit/settle/pipeline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err (unless the JSON log's last line did) and maps it to
// the documented exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if !errors.As(err, new(loggedError)) {
		fmt.Fprintf(stderr, "settle: %v\n", err)
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "settle: interrupted; state is recorded, run again to resume")
		}
	}
	return codeOf(err)
}

// codeOf maps err to the documented exit code. It is the only place exit
// codes are decided.
func codeOf(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return 1
	}
	return pipeline.KindOf(err).ExitCode()
}
