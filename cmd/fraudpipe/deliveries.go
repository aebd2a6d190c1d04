package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/fraudpipe/fraudpipe/notifier"
)

// deliveriesCommand answers "was this alert delivered, where, when" from the notifier's Redis.
func deliveriesCommand() *ffcli.Command {
	fs := flag.NewFlagSet("fraudpipe deliveries", flag.ContinueOnError)
	redisURL := fs.String("redis", "redis://127.0.0.1:6379/0", "the notifier's Redis")
	redisCA := fs.String("redis-ca-file", "", "PEM CA certificates that sign Redis's TLS certificate (with rediss://)")
	return &ffcli.Command{
		Name: "deliveries", ShortUsage: "fraudpipe deliveries [--redis URL] ALERT_ID...", FlagSet: fs, Options: envOptions,
		ShortHelp: "Show where and when alerts were delivered (from the notifier's Redis).",
		Exec: func(ctx context.Context, ids []string) error {
			if len(ids) == 0 {
				return flag.ErrHelp
			}
			rdb, _, err := redisClient(ctx, *redisURL, *redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			store := notifier.NewStore(rdb, nil, nil)
			w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ALERT\tCHANNEL\tRECIPIENT\tSTATUS\tATTEMPTS\tAT\tDETAIL")
			for _, id := range ids {
				out, err := store.Deliveries(ctx, id)
				if err != nil {
					return err
				}
				if len(out) == 0 {
					fmt.Fprintf(w, "%s\t-\t-\tno deliveries recorded\t\t\t\n", id)
				}
				slices.SortFunc(out, func(a, b notifier.Outcome) int { return a.At.Compare(b.At) })
				for _, o := range out {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, o.Channel, o.Recipient, o.Status, o.Attempts, o.At.Format(time.RFC3339), o.Detail)
				}
			}
			return w.Flush()
		},
	}
}
