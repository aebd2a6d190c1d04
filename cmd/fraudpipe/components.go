package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules/watch"
	"github.com/fraudpipe/fraudpipe/topics"
)

// deps is what the pipeline's parts share in one process.
type deps struct {
	kafka    kafka.Config
	stateDir string // local storage base; one subdirectory per cluster id
	reg      *prometheus.Registry
	log      *slog.Logger
}

// prepare waits for the cluster, creates the pipeline's topics and returns the local storage directory for it.
func (d deps) prepare(ctx context.Context) (storage string, err error) {
	if err := d.kafka.Validate(); err != nil {
		return "", err
	}
	if err := d.kafka.WaitForCluster(ctx, d.log); err != nil {
		return "", err
	}
	if err := d.kafka.EnsureTopics(ctx, pipelineTopics()); err != nil {
		return "", err
	}
	id, err := d.kafka.ClusterID()
	if err != nil {
		return "", err
	}
	return processors.StorageDir(d.stateDir, id, d.log)
}

// startDetector runs the detector group, the rules watcher and the idle-state expiry in g.
func startDetector(ctx context.Context, g *errgroup.Group, d deps, storage, rulesPath string, expireEvery time.Duration) error {
	rw, err := watch.Load(rulesPath, d.log, d.reg)
	if err != nil {
		return err
	}
	partitions, err := d.kafka.PartitionCount(string(topics.Payments))
	if err != nil {
		return err
	}
	m := detector.NewMetrics(d.reg)
	dir := filepath.Join(storage, string(detector.Group))
	sup := &processors.Supervisor{Name: "detector", Storage: dir, Log: d.log, Build: func() (*goka.Processor, error) {
		opts := append(d.kafka.ProcessorOptions("fraudpipe-detector", d.log), processors.Storage(dir))
		return detector.New(d.kafka.Brokers, detector.Config{
			Rules: rw.Current, Partitions: partitions, Metrics: m, Log: d.log,
		}, opts...)
	}}
	metrics.RegisterLag(d.reg, string(detector.Group), sup.Current)
	g.Go(func() error { return sup.Run(ctx) })
	g.Go(func() error { return rw.Run(ctx) })
	g.Go(func() error { return expireLoop(ctx, sup, expireEvery, d.log) })
	d.log.Info("detector started", "partitions", partitions, "state", dir)
	return nil
}

// expireLoop deletes idle accounts' state periodically; goka has no timers.
func expireLoop(ctx context.Context, sup *processors.Supervisor, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p := sup.Current()
		if p == nil {
			continue
		}
		n, err := detector.Expire(ctx, p, time.Now())
		switch {
		case errors.Is(err, goka.ErrVisitAborted) || ctx.Err() != nil:
			log.Debug("expiry interrupted by a rebalance or shutdown")
		case err != nil:
			log.Warn("expiry failed", "err", err)
		default:
			log.Debug("expiry visited accounts", "accounts", n)
		}
	}
}

// startNotifier runs the notifier group in g, delivering to the log channel.
func startNotifier(ctx context.Context, g *errgroup.Group, d deps, storage string, alerts *slog.Logger) error {
	m := notifier.NewMetrics(d.reg)
	dir := filepath.Join(storage, string(notifier.Group))
	channels := []notifier.Channel{notifier.LogChannel{Log: alerts}}
	sup := &processors.Supervisor{Name: "notifier", Storage: dir, Log: d.log, Build: func() (*goka.Processor, error) {
		opts := append(d.kafka.ProcessorOptions("fraudpipe-notifier", d.log), processors.Storage(dir))
		return notifier.New(d.kafka.Brokers, notifier.Config{Channels: channels, Metrics: m, Log: d.log}, opts...)
	}}
	metrics.RegisterLag(d.reg, string(notifier.Group), sup.Current)
	g.Go(func() error { return sup.Run(ctx) })
	d.log.Info("notifier started", "channels", fmt.Sprint(len(channels)), "state", dir)
	return nil
}
