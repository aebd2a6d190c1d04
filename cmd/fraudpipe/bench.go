package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/fraudpipe/fraudpipe/bench"
	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/kafka"
)

// benchConfig is the configuration of `fraudpipe bench`.
type benchConfig struct {
	kafka     kafkaFlags
	log       logFlags
	count     int
	rounds    int
	accounts  int
	rates     string
	rateFor   time.Duration
	detectors int
	rules     string
	out       string
	profile   string
	profFor   time.Duration
	countOnly bool
	// the users' path: `fraudpipe run` fed by standard clients
	usersPath   bool
	api         bool
	clients     string
	apiEmbedded bool
	cases       string
	kafkaScript string
}

func benchCommand() *ffcli.Command {
	var c benchConfig
	fs := flag.NewFlagSet("fraudpipe bench", flag.ContinueOnError)
	c.kafka.register(fs, "", "benchmark against this cluster instead of an embedded broker started for the run")
	c.log.register(fs)
	// Accounts are drawn at random: 2,000,000 payments over 1,500,000 accounts reach about 1,100,000 of them,
	// the million accounts the memory target is about.
	fs.IntVar(&c.count, "count", 2_000_000, "payments at saturation")
	// Three rounds, each ratio against the raw runs beside it: one long run's ratio moved between 0.27 and 0.43
	// within a day on a shared VM, as a slow minute fell on the pipeline or on a baseline.
	fs.IntVar(&c.rounds, "rounds", 3, "split the saturation run into this many rounds between raw baselines; the ratio is their median")
	fs.IntVar(&c.accounts, "accounts", 1_500_000, "accounts the generator draws from")
	fs.StringVar(&c.rates, "rates", "1000,10000", "offered rates for the latency runs (payments/s)")
	// 30 s, not 10: at 10,000/s a 10 s run holds about 1,300 alerts, so its p99 rests on 13 of them, and
	// whether one of the detector's garbage collections (each delays the next 100-300 ms of alerts when a million
	// accounts hold state) falls in the window decides it. Three 30 s runs gave p99 14-36 ms where 10 s runs gave 8-23.
	fs.DurationVar(&c.rateFor, "rate-for", 30*time.Second, "how long each latency run lasts")
	fs.IntVar(&c.detectors, "detectors", 1, "detector instances in the consumer group")
	fs.StringVar(&c.rules, "rules", "examples/rules.yaml", "rules file")
	fs.StringVar(&c.out, "out", "bench-results.json", "where the results go as JSON")
	fs.StringVar(&c.profile, "profile", "", "write CPU profiles of each detector and of the bench process (broker, producer) at saturation to this directory (go tool pprof)")
	fs.BoolVar(&c.countOnly, "count-only", false, "detectors score nothing, only count each payment in its account's state: what goka, the Kafka clients and the store take without the rules (no latency runs)")
	fs.BoolVar(&c.usersPath, "users-path", false, "measure the users' path instead: `fraudpipe run` (broker, detector, notifier) fed by kcat and Apache Kafka's Java client, each pipeline with a matching and a mismatched partitioner (--count payments per case, latency at the last of --rates through kcat)")
	fs.BoolVar(&c.api, "api", false, "measure the decision API instead: `fraudpipe run` answering POST /v1/payments from many HTTP clients, latency at each of --rates (for --rate-for) and decisions per second at saturation (--clients)")
	fs.BoolVar(&c.apiEmbedded, "api-embedded-redis", false, "with --api: keep the API's keys in fraudpipe run's embedded Redis instead of a redis-server started for the run")
	fs.StringVar(&c.clients, "clients", "128,512", "with --api: concurrent clients of the saturation runs, a run per entry (empty: none)")
	fs.StringVar(&c.cases, "cases", "kcat:crc32,kcat:murmur2,java:murmur2,java:crc32", "with --users-path: client:pipeline-partitioner pairs")
	fs.StringVar(&c.kafkaScript, "kafka-script", "e2e/kafka/kafka.sh", "with --users-path: the script that runs the Java client (fetches Apache Kafka's jars with Maven)")
	fs.DurationVar(&c.profFor, "profile-for", 15*time.Second, "how long --profile samples, from the start of the first saturation round")
	return &ffcli.Command{
		Name: "bench", ShortUsage: "fraudpipe bench [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Measure throughput, latency and resources of the pipeline on this machine.",
		Exec:      func(ctx context.Context, _ []string) error { return c.run(ctx) },
	}
}

func (c *benchConfig) run(ctx context.Context) error {
	log, err := c.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "fraudpipe-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rates, err := intList("--rates", c.rates)
	if err != nil {
		return err
	}
	if c.usersPath {
		return c.runUsersPath(ctx, self, work, rates, log)
	}
	if c.api {
		clients, err := intList("--clients", c.clients)
		if err != nil {
			return err
		}
		res, err := bench.RunAPI(ctx, bench.APIConfig{Binary: self, Rules: c.rules, WorkDir: work, Accounts: c.accounts,
			Partitions: c.kafka.partitions, Rates: rates, RateFor: c.rateFor, Clients: clients, SaturateFor: c.rateFor, ResultPath: c.out, ProfileDir: c.profile, EmbeddedRedis: c.apiEmbedded}, log)
		if err != nil {
			return err
		}
		bench.PrintAPI(os.Stdout, res)
		fmt.Printf("\nresults written to %s\n", c.out)
		return nil
	}
	if c.kafka.brokers == "" {
		b, err := embedded.StartBroker(filepath.Join(work, "kafka"), "127.0.0.1:0", log)
		if err != nil {
			return err
		}
		defer b.Close()
		c.kafka.brokers = b.Addr()
	}
	res, err := bench.Run(ctx, bench.Config{
		Kafka: c.kafka.config(), Binary: self, Rules: c.rules, Count: c.count, Rounds: c.rounds, Accounts: c.accounts, Rates: rates,
		RateFor: c.rateFor, Detectors: c.detectors, WorkDir: work, ResultPath: c.out,
		ProfileDir: c.profile, ProfileFor: c.profFor, CountOnly: c.countOnly,
	}, log)
	if err != nil {
		return err
	}
	bench.Print(os.Stdout, res)
	fmt.Printf("\nresults written to %s\n", c.out)
	return nil
}

func (c *benchConfig) runUsersPath(ctx context.Context, self, work string, rates []int, log *slog.Logger) error {
	var cases []bench.UsersPathCase
	for s := range strings.SplitSeq(c.cases, ",") {
		client, p, ok := strings.Cut(strings.TrimSpace(s), ":")
		pt, err := kafka.ParsePartitioner(p)
		if !ok || err != nil || pt == "" || bench.ClientPartitioner[client] == "" {
			return fmt.Errorf("--cases %q: want client:partitioner with client kcat or java and partitioner murmur2, crc32 or fnv1a", s)
		}
		cases = append(cases, bench.UsersPathCase{Client: client, Partitioner: pt})
	}
	rate := 0
	if len(rates) > 0 {
		rate = rates[len(rates)-1]
	}
	res, err := bench.RunUsersPath(ctx, bench.UsersPathConfig{
		Binary: self, Rules: c.rules, WorkDir: work, Count: c.count, Accounts: c.accounts, Partitions: c.kafka.partitions,
		Rate: rate, RateFor: c.rateFor, Cases: cases, KafkaScript: c.kafkaScript, ResultPath: c.out,
	}, log)
	if err != nil {
		return err
	}
	bench.PrintUsersPath(os.Stdout, res)
	fmt.Printf("\nresults written to %s\n", c.out)
	return nil
}

// intList reads a comma-separated list of numbers (a flag's value).
func intList(flag, s string) ([]int, error) {
	var out []int
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		out = append(out, n)
	}
	return out, nil
}
