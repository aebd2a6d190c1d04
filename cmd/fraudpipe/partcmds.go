package main

// The subcommands that run one part of the pipeline each (detector, notifier, broker, topics); what they start is
// in startdetector.go and startnotifier.go, what they share in deps.go.

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
)

// partConfig is the configuration of the subcommands that run one part of the pipeline.
type partConfig struct {
	kafka       kafkaFlags
	log         logFlags
	stateDir    string
	stateCache  int
	metricsAddr string
	// detector
	rules           string
	rulesPushOnSave bool
	expireEvery     time.Duration
	countOnly       bool
	decisions       bool
	// notifier
	notifier notifierFlags
	// broker
	dataDir string
	listen  string
	// detector and notifier
	records recordFlags
	console consoleFlags
	api     apiFlags
}

func (c *partConfig) common(name, metricsDefault string) *flag.FlagSet {
	fs := flag.NewFlagSet("fraudpipe "+name, flag.ContinueOnError)
	// Parts without processors of their own (api, console) take no record flags, yet their deps carry the policy.
	c.records = recordFlags{attempts: processors.DefaultMaxAttempts, policy: string(processors.PolicySkip)}
	c.kafka.register(fs, defaultBrokers, "Kafka brokers (host:port,...)")
	c.log.register(fs)
	fs.StringVar(&c.metricsAddr, "metrics-addr", metricsDefault, "Prometheus metrics and pprof listener (empty: off)")
	return fs
}

func detectorCommand() *ffcli.Command {
	var c partConfig
	fs := c.common("detector", "127.0.0.1:9101")
	fs.StringVar(&c.rules, "rules", "examples/rules.yaml", "rules file, published as a ruleset version when its content is new (empty: use the rules topic only)")
	fs.BoolVar(&c.rulesPushOnSave, "rules-push-on-save", true, "publish every valid save of --rules as a new version (with many detectors, leave it on for one, or push from CI)")
	fs.StringVar(&c.stateDir, "state-dir", "data/state", "local state (goka storage); each instance on a machine needs its own")
	fs.DurationVar(&c.expireEvery, "expire-interval", 10*time.Minute, "how often idle accounts' state is deleted")
	fs.IntVar(&c.stateCache, "state-cache", defaultStateCacheMiB, stateCacheHelp)
	fs.BoolVar(&c.countOnly, "count-only", false, "for benchmarks only: score nothing, just count each payment in its account's state (fraudpipe bench --count-only)")
	registerDecisions(fs, &c.decisions)
	c.records.register(fs)
	return &ffcli.Command{
		Name: "detector", ShortUsage: "fraudpipe detector [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Score payments and emit alerts; run several for more throughput (one consumer group).",
		Exec: func(ctx context.Context, _ []string) error {
			if err := preflight(c.rules, nil, c.records); err != nil {
				return err
			}
			return c.runPart(ctx, func(ctx context.Context, g *errgroup.Group, d deps, storage string) error {
				return startDetector(ctx, g, d, storage, detectorOptions{rulesPath: c.rules, pushOnSave: c.rulesPushOnSave, expireEvery: c.expireEvery, countOnly: c.countOnly, decisions: c.decisions})
			})
		},
	}
}

func notifierCommand() *ffcli.Command {
	var c partConfig
	fs := c.common("notifier", "127.0.0.1:9102")
	c.notifier.register(fs)
	c.records.register(fs)
	return &ffcli.Command{
		Name: "notifier", ShortUsage: "fraudpipe notifier [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Deliver alerts; run several for more throughput (one consumer group).",
		Exec: func(ctx context.Context, _ []string) error {
			if err := preflight("", &c.notifier, c.records); err != nil {
				return err
			}
			alerts, closeAlerts, err := alertLog(c.notifier.alertLog, c.log.format)
			if err != nil {
				return err
			}
			defer closeAlerts()
			return c.runPart(ctx, func(ctx context.Context, g *errgroup.Group, d deps, _ string) error {
				return startNotifier(ctx, g, d, c.notifier, alerts)
			})
		},
	}
}

// logAndListen opens a part's diagnostic log (stderr) and its metrics listener.
func logAndListen(l logFlags, addr string) (*slog.Logger, metrics.Listener, error) {
	log, err := l.logger(os.Stderr)
	if err != nil {
		return nil, metrics.Listener{}, err
	}
	ln, err := metrics.Listen(addr)
	if err != nil {
		return nil, metrics.Listener{}, err
	}
	return log, ln, nil
}

// runPart prepares the cluster, starts one part and the metrics listener, and runs until ctx is done.
func (c *partConfig) runPart(ctx context.Context, start func(context.Context, *errgroup.Group, deps, string) error) error {
	log, ln, err := logAndListen(c.log, c.metricsAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	d := newDeps(c.kafka.config(), c.stateDir, c.stateCache, c.records, log)
	g, gctx, storage, stop, err := d.serveAndPrepare(ctx, ln, "kafka", false)
	defer stop()
	if err != nil {
		return err
	}
	if err := start(gctx, g, d, storage); err != nil {
		return err
	}
	d.health.Remove("startup")
	return g.Wait()
}

func brokerCommand() *ffcli.Command {
	var c partConfig
	fs := flag.NewFlagSet("fraudpipe broker", flag.ContinueOnError)
	c.kafka.register(fs, "", "unused: the broker is the cluster")
	c.log.register(fs)
	fs.StringVar(&c.dataDir, "data-dir", "data", "where the broker persists topics, records and offsets")
	fs.StringVar(&c.listen, "broker-listen", defaultBrokers, "listen address for Kafka clients")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9103", "Prometheus metrics and pprof listener (empty: off)")
	return &ffcli.Command{
		Name: "broker", ShortUsage: "fraudpipe broker [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Run only the embedded Kafka-protocol broker, with the pipeline's topics created.",
		Exec: func(ctx context.Context, _ []string) error {
			log, ln, err := logAndListen(c.log, c.metricsAddr)
			if err != nil {
				return err
			}
			defer ln.Close()
			b, err := embedded.StartBroker(c.dataDir+"/kafka", c.listen, log)
			if err != nil {
				return err
			}
			defer b.Close()
			c.kafka.brokers = b.Addr()
			k, err := createPipeline(ctx, c.kafka.config(), log)
			if err != nil {
				return err
			}
			log.Info("embedded broker listening", "addr", b.Addr(), "partitioner", k.Partitioner)
			return metrics.Serve(ctx, ln, metrics.NewRegistry(), nil, log)
		},
	}
}

func topicsCommand() *ffcli.Command {
	var c partConfig
	fs := flag.NewFlagSet("fraudpipe topics", flag.ContinueOnError)
	c.kafka.register(fs, defaultBrokers, "Kafka brokers (host:port,...)")
	c.log.register(fs)
	return &ffcli.Command{
		Name: "topics", ShortUsage: "fraudpipe topics [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Create the pipeline's topics on a cluster (every part also does this at start-up).",
		Exec: func(ctx context.Context, _ []string) error {
			log, err := c.log.logger(os.Stderr)
			if err != nil {
				return err
			}
			k := c.kafka.config()
			if k, err = createPipeline(ctx, k, log); err != nil {
				return err
			}
			log.Info("pipeline partitioner", "partitioner", k.Partitioner)
			for _, s := range pipelineTopics() {
				log.Info("topic ready", "topic", s.Name, "partitions", k.Partitions, "compacted", s.Compacted)
			}
			return nil
		},
	}
}
