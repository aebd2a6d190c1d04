package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"

	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/topics"
)

// produceConfig is the configuration of `fraudpipe produce`.
type produceConfig struct {
	kafka     kafkaFlags
	log       logFlags
	file      string
	generate  bool
	count     int
	rate      float64
	accounts  int
	fraud     float64
	seed      uint64
	start     string
	interval  time.Duration
	customers string
	withCust  bool
	labels    bool
}

func produceCommand() *ffcli.Command {
	var c produceConfig
	fs := flag.NewFlagSet("fraudpipe produce", flag.ContinueOnError)
	c.kafka.register(fs, defaultBrokers, "Kafka brokers (host:port,...)")
	c.log.register(fs)
	fs.StringVar(&c.file, "file", "-", "JSON-lines file of payments (-: stdin)")
	fs.BoolVar(&c.generate, "generate", false, "generate a synthetic stream instead of reading --file")
	fs.IntVar(&c.count, "count", 10000, "with --generate: how many payments")
	fs.Float64Var(&c.rate, "rate", 1000, "with --generate: payments per second (0: as fast as possible)")
	fs.IntVar(&c.accounts, "accounts", 10000, "with --generate: how many accounts")
	fs.Float64Var(&c.fraud, "fraud", 0.01, "with --generate: share of payments that start a fraud pattern (burst, big ticket, country hopping)")
	fs.Uint64Var(&c.seed, "seed", 1, "with --generate: random seed; the same seed makes the same stream")
	fs.StringVar(&c.start, "start", "", "with --generate: event time of the first payment, RFC 3339 (default: so that the stream ends now)")
	fs.DurationVar(&c.interval, "account-interval", time.Hour, "with --generate: mean time between one account's payments, in event time")
	fs.StringVar(&c.customers, "customers", "", "JSON-lines file of customer records to send to the customers topic (then --file is not read unless given)")
	fs.BoolVar(&c.withCust, "with-customers", true, "with --generate: first send a customer record (email, phone) for every account")
	fs.BoolVar(&c.labels, "labels", false, "with --generate: also send a label for every payment to the labels topic (fraud for the patterns' payments, legitimate for the rest), for rules backtest --labels topic")
	return &ffcli.Command{
		Name: "produce", ShortUsage: "fraudpipe produce [--file F | --generate] [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Submit payments from a JSON-lines file, stdin, or the synthetic generator.",
		Exec:      func(ctx context.Context, _ []string) error { return c.run(ctx, os.Stdin, os.Stderr) },
	}
}

func (c *produceConfig) run(ctx context.Context, stdin io.Reader, out io.Writer) error {
	log, err := c.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	k := c.kafka.config()
	// Payments go where the pipeline places their account, so that none takes the detector's loop hop.
	if k, err = createPipeline(ctx, k, log); err != nil {
		return err
	}
	s, err := producer.NewSender(k, "fraudpipe-producer", log)
	if err != nil {
		return err
	}
	if c.generate {
		return c.runGenerator(ctx, s, out)
	}
	if c.customers != "" {
		return c.sendCustomers(ctx, s, out)
	}
	in := stdin
	if c.file != "-" {
		f, err := os.Open(c.file)
		if err != nil {
			return fmt.Errorf("open payments: %w", err)
		}
		defer f.Close()
		in = f
	}
	sent, rejected, sendErr := producer.SendLines(ctx, s, string(topics.Payments), in)
	closeErr := s.Close()
	for _, r := range rejected {
		fmt.Fprintf(out, "%s:%d: rejected: %v\n", c.file, r.Line, r.Err)
	}
	fmt.Fprintf(out, "sent %d payments to %s (%d acknowledged), rejected %d lines\n", sent, topics.Payments, s.Acked(), len(rejected))
	switch {
	case sendErr != nil:
		return sendErr
	case closeErr != nil:
		return closeErr
	case len(rejected) > 0:
		return fmt.Errorf("%d lines rejected", len(rejected))
	}
	return nil
}

func (c *produceConfig) sendCustomers(ctx context.Context, s *producer.Sender, out io.Writer) error {
	f, err := os.Open(c.customers)
	if err != nil {
		return fmt.Errorf("open customers: %w", err)
	}
	defer f.Close()
	sent, rejected, sendErr := producer.SendCustomerLines(ctx, s, f)
	closeErr := s.Close()
	for _, r := range rejected {
		fmt.Fprintf(out, "%s:%d: rejected: %v\n", c.customers, r.Line, r.Err)
	}
	fmt.Fprintf(out, "sent %d customers to %s (%d acknowledged), rejected %d lines\n", sent, topics.Customers, s.Acked(), len(rejected))
	if err := errors.Join(sendErr, closeErr); err != nil {
		return err
	}
	if len(rejected) > 0 {
		return fmt.Errorf("%d lines rejected", len(rejected))
	}
	return nil
}

func (c *produceConfig) runGenerator(ctx context.Context, s *producer.Sender, out io.Writer) error {
	start := time.Now().Add(-time.Duration(c.count) * producer.Step(c.accounts, c.interval))
	if c.start != "" {
		t, err := time.Parse(time.RFC3339, c.start)
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		start = t
	}
	g := producer.NewGenerator(c.seed, c.accounts, c.fraud, start, c.interval)
	if c.withCust {
		for _, cu := range g.Customers() {
			b, _ := json.Marshal(cu)
			if err := s.Send(ctx, string(topics.Customers), cu.AccountID, b); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "sent %d customers to %s\n", c.accounts, topics.Customers)
	}
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	began := time.Now()
	lastReport := began
	report := func(sent int, final bool) {
		el := time.Since(began).Seconds()
		line := fmt.Sprintf("sent %d/%d payments (%.0f/s), %d records acknowledged, fraud patterns started: %v",
			sent, c.count, float64(sent)/max(el, 1e-9), s.Acked(), g.Patterns)
		switch {
		case tty && !final:
			fmt.Fprintf(out, "\r\033[K%s", line)
		case tty:
			fmt.Fprintf(out, "\r\033[K%s\n", line)
		default:
			fmt.Fprintln(out, line)
		}
	}
	var err error
	sent, labelled := 0, 0
	for sent < c.count {
		if c.rate > 0 {
			// Pace against the schedule, not per payment, so the rate holds whatever each send costs.
			if ahead := time.Until(began.Add(time.Duration(float64(sent) / c.rate * float64(time.Second)))); ahead > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(ahead):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		p, fraud := g.NextLabelled()
		if err = s.Send(ctx, string(topics.Payments), p.AccountID, producer.Encode(p)); err != nil {
			break
		}
		if c.labels {
			b, _ := json.Marshal(producer.Label(p, fraud)) // strings and a time: cannot fail
			if err = s.Send(ctx, topics.Labels, topics.LabelKey(p.AccountID, p.ID), b); err != nil {
				break
			}
			labelled++
		}
		sent++
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			report(sent, false)
		}
	}
	closeErr := s.Close()
	report(sent, true)
	if c.labels {
		fmt.Fprintf(out, "sent %d labels to %s\n", labelled, topics.Labels)
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	return closeErr
}
