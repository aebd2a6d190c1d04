package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/metrics"
)

// runConfig is the configuration of `fraudpipe run`.
type runConfig struct {
	kafka        kafkaFlags
	log          logFlags
	rules        string
	dataDir      string
	brokerListen string
	metricsAddr  string
	notifier     notifierFlags
	expireEvery  time.Duration
	stateCache   int
	records      recordFlags
	console      consoleFlags
	api          apiFlags
	decisions    bool
}

func runCommand() *ffcli.Command {
	var c runConfig
	fs := flag.NewFlagSet("fraudpipe run", flag.ContinueOnError)
	c.kafka.register(fs, "", "use this Kafka cluster (host:port,...) instead of the embedded broker")
	c.log.register(fs)
	fs.StringVar(&c.rules, "rules", "examples/rules.yaml", "rules file; each valid save is published as a new ruleset version and takes effect without a restart")
	fs.StringVar(&c.dataDir, "data-dir", "data", "where the embedded broker and local state persist; the next run resumes from it")
	fs.StringVar(&c.brokerListen, "broker-listen", defaultBrokers, "address of the embedded broker, for any Kafka client")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9100", "Prometheus metrics and pprof listener (empty: off)")
	c.notifier.register(fs)
	fs.DurationVar(&c.expireEvery, "expire-interval", 10*time.Minute, "how often idle accounts' state is deleted")
	fs.IntVar(&c.stateCache, "state-cache", defaultStateCacheMiB, stateCacheHelp)
	c.records.register(fs)
	c.console.register(fs, "127.0.0.1:8080")
	c.api.register(fs, "127.0.0.1:8081", false)
	registerDecisions(fs, &c.decisions)
	return &ffcli.Command{
		Name: "run", ShortUsage: "fraudpipe run [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Run the whole pipeline: embedded broker (unless --brokers), detector and notifier.",
		Exec:      func(ctx context.Context, _ []string) error { return c.run(ctx) },
	}
}

func (c *runConfig) run(ctx context.Context) error {
	log, err := c.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	if err := preflight(c.rules, &c.notifier, c.records); err != nil {
		return err
	}
	if !c.decisions && c.api.addr != "" {
		return errors.New("--decisions=false leaves the decision API without decisions: give --api-addr '' too")
	}
	ln, err := metrics.Listen(c.metricsAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	alerts, closeAlerts, err := alertLog(c.notifier.alertLog, c.log.format)
	if err != nil {
		return err
	}
	defer closeAlerts()
	embeddedBroker := c.kafka.brokers == ""
	if embeddedBroker {
		b, err := embedded.StartBroker(filepath.Join(c.dataDir, "kafka"), c.brokerListen, log)
		if err != nil {
			return err
		}
		// Stopped last, after every client below has shut down.
		defer b.Close()
		c.kafka.brokers = b.Addr()
		if c.kafka.compression == "" {
			// The broker shares the process: compressing a batch for it only spends the CPU the detector needs.
			c.kafka.compression = "none"
		}
		log.Info("embedded broker listening", "addr", b.Addr(), "data", filepath.Join(c.dataDir, "kafka"))
	}
	d := newDeps(c.kafka.config(), filepath.Join(c.dataDir, "state"), c.stateCache, c.records, log)
	kafkaPart := "kafka"
	if embeddedBroker {
		kafkaPart = "broker"
	}
	g, gctx, storage, stop, err := d.serveAndPrepare(ctx, ln, kafkaPart, embeddedBroker)
	defer stop()
	if err != nil {
		return err
	}
	if err := startDetector(gctx, g, d, storage, detectorOptions{rulesPath: c.rules, pushOnSave: true, expireEvery: c.expireEvery, decisions: c.decisions}); err != nil {
		return err
	}
	if err := startNotifier(gctx, g, d, c.notifier, alerts); err != nil {
		return err
	}
	if err := startConsole(gctx, g, d, c.console, storage, c.dataDir); err != nil {
		return err
	}
	if err := startAPI(gctx, g, d, c.api, c.notifier.redisURL, c.notifier.redisCA, c.dataDir); err != nil {
		return err
	}
	d.health.Remove("startup")
	hint := "fraudpipe produce --file examples/payments.jsonl"
	if c.kafka.brokers != defaultBrokers {
		hint = "fraudpipe produce --brokers " + c.kafka.brokers + " --file examples/payments.jsonl"
	}
	log.Info("pipeline running; submit payments with: "+hint, "brokers", c.kafka.brokers)
	err = g.Wait()
	log.Info("pipeline stopped")
	return err
}
