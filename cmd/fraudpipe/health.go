package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
)

// recordFlags set what the detector and the notifier do with a record that keeps failing.
type recordFlags struct {
	attempts int
	policy   string
}

func (r *recordFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.attempts, "record-attempts", processors.DefaultMaxAttempts, "how often a record whose processing fails is tried (the processor restarts between tries) before --record-failure-policy applies")
	fs.StringVar(&r.policy, "record-failure-policy", string(processors.PolicySkip), "what to do with a record that failed on every attempt: skip (dead-letter it, reason retries_exhausted, and go on) or stop (stop the processor; /readyz and /healthz say why)")
}

func (r recordFlags) validate() error {
	if _, err := processors.ParsePolicy(r.policy); err != nil {
		return fmt.Errorf("--record-failure-policy: %w", err)
	}
	if r.attempts < 1 {
		return fmt.Errorf("--record-attempts %d: want at least 1", r.attempts)
	}
	return nil
}

// guard returns the poison-record guard of one processor, shared by every processor its supervisor builds.
func (r recordFlags) guard(d deps, name string, deadLetters goka.Stream) (*processors.Guard, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	policy, _ := processors.ParsePolicy(r.policy)
	return &processors.Guard{Name: name, DeadLetters: deadLetters, MaxAttempts: r.attempts, Policy: policy,
		Metrics: d.procMetrics, Log: d.log}, nil
}

// starting reports a part that is being set up: live, not ready yet.
func starting(what string) func() metrics.Status {
	return func() metrics.Status { return metrics.Status{Live: true, Detail: "starting: " + what} }
}

// watchKafka reports, as the part name in h, whether the cluster answers (it is asked for its id). The embedded
// broker of `fraudpipe run` is part of the process, so it also stops counting as live once it has not answered
// three times in a row; an external cluster that is down is not this process's fault, and restarting it would not
// help.
func watchKafka(ctx context.Context, k kafka.Config, name string, embedded bool, h *metrics.Health, every time.Duration) error {
	where := strings.Join(k.Brokers, ",")
	notLiveAfter := 0
	if embedded {
		notLiveAfter = 3
	}
	return probeLoop(ctx, h, name, every, notLiveAfter, where, func(ctx context.Context) error { _, err := k.ClusterID(ctx); return err })
}

// probeLoop asks probe every interval and reports the answer as the part name in h: ready while it answers; live
// unless it has not answered notLiveAfter times in a row (0: always live).
func probeLoop(ctx context.Context, h *metrics.Health, name string, every time.Duration, notLiveAfter int, where string, probe func(context.Context) error) error {
	var (
		mu     sync.Mutex
		status = metrics.Status{Live: true, Detail: "not asked yet"}
		missed int
	)
	h.Add(name, func() metrics.Status { mu.Lock(); defer mu.Unlock(); return status })
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every+5*time.Second)
		err := probe(pctx)
		cancel()
		mu.Lock()
		if err == nil {
			missed = 0
			status = metrics.Status{Live: true, Ready: true, Detail: "answers at " + where}
		} else {
			missed++
			status = metrics.Status{Live: notLiveAfter == 0 || missed < notLiveAfter,
				Detail: fmt.Sprintf("no answer from %s (%d time(s) in a row): %v", where, missed, err)}
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// checkEvery is how often a process asks Kafka (and the notifier Redis) whether it answers, for its health.
const checkEvery = 2 * time.Second

func newDeps(k kafka.Config, stateDir string, stateCacheMiB int, records recordFlags, log *slog.Logger) deps {
	reg := metrics.NewRegistry()
	return deps{kafka: k, stateDir: stateDir, stateCacheMiB: stateCacheMiB, reg: reg, log: log,
		health: metrics.NewHealth(), procMetrics: processors.NewMetrics(reg), records: records}
}

// serveAndPrepare serves metrics and health on ln and watches the cluster, from before it is reachable, so that
// /readyz says what start-up waits for; then it prepares the cluster (deps.prepare). The parts run in the
// returned group; stop cancels it. Until the caller removes it, the check "startup" keeps /readyz at 503.
func (d *deps) serveAndPrepare(ctx context.Context, ln metrics.Listener, kafkaPart string, embedded bool) (*errgroup.Group, context.Context, string, func(), error) {
	if err := d.records.validate(); err != nil {
		return nil, nil, "", func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	d.health.Add("startup", starting("waiting for kafka and creating the topics"))
	g.Go(func() error { return metrics.Serve(gctx, ln, d.reg, d.health, d.log) })
	if err := d.kafka.Validate(); err != nil {
		cancel()
		g.Wait()
		return nil, nil, "", func() {}, err
	}
	g.Go(func() error { return watchKafka(gctx, d.kafka, kafkaPart, embedded, d.health, checkEvery) })
	storage, err := d.prepare(gctx)
	if err != nil {
		cancel()
		g.Wait()
		return nil, nil, "", func() {}, err
	}
	return g, gctx, storage, cancel, nil
}
