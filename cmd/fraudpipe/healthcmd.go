package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// healthCommand asks a running part whether it is ready (or live): container healthchecks use it, since the
// image has no shell and no HTTP client of its own.
func healthCommand() *ffcli.Command {
	fs := flag.NewFlagSet("fraudpipe health", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9100/readyz", "the part's /readyz (ready) or /healthz (live) endpoint")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	return &ffcli.Command{
		Name: "health", ShortUsage: "fraudpipe health [--url URL]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Exit 0 if a running part answers 200 on its health endpoint; print its answer either way.",
		Exec: func(ctx context.Context, _ []string) error {
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			os.Stdout.Write(body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health: %s answered %s", *url, resp.Status)
			}
			return nil
		},
	}
}
