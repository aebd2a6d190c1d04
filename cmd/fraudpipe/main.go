// Command fraudpipe runs the fraud detection pipeline and its tools. `fraudpipe run` is the whole pipeline on
// an embedded broker; the other subcommands run one part each against a Kafka cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "fraudpipe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	root := &ffcli.Command{
		Name:       "fraudpipe",
		ShortUsage: "fraudpipe <subcommand> [flags]",
		ShortHelp:  "Real-time payment fraud detection on Kafka.",
		LongHelp: "Every flag can also be set by an environment variable: FRAUDPIPE_ and the flag name in upper\n" +
			"case with - as _ (--data-dir is FRAUDPIPE_DATA_DIR). Flags win over the environment.",
		Subcommands: []*ffcli.Command{
			runCommand(), brokerCommand(), detectorCommand(), notifierCommand(), topicsCommand(), produceCommand(),
			deliveriesCommand(), benchCommand(), rulesCommand(), listsCommand(), healthCommand(), consoleCommand(), apiCommand(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	return root.ParseAndRun(ctx, args)
}
