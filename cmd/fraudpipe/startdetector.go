package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/kafka/gokaadapter"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/rules/registry"
	"github.com/fraudpipe/fraudpipe/rules/watch"
	"github.com/fraudpipe/fraudpipe/topics"
)

// detectorOptions are the detector's settings that the run command and the detector command share.
type detectorOptions struct {
	rulesPath   string
	pushOnSave  bool
	expireEvery time.Duration
	countOnly   bool // benchmarks: score nothing (detector.Config.CountOnly)
	decisions   bool // a decision per payment on the decisions topic (detector.Config.Decisions)
}

func registerDecisions(fs *flag.FlagSet, v *bool) {
	fs.BoolVar(v, "decisions", true, "write a decision (approve, review, block) for every payment to the decisions topic; the decision API needs them")
}

// startDetector runs the detector group, the followers of the rules and lists topics, the rules-file watcher
// and the idle-state expiry in g.
//
// The rules topic is the source of truth. The rules file is published as a new version when its content was
// never published (the first start, or an edit made while the pipeline was down), and, with pushOnSave, again
// on every valid save. A file whose content matches any published version is not pushed at start-up, so a
// restart never undoes a `fraudpipe rules rollback`.
func startDetector(ctx context.Context, g *errgroup.Group, d deps, storage string, o detectorOptions) error {
	d.health.Add("detector", starting("reading the rules and lists topics"))
	guard, err := d.records.guard(d, string(detector.Group), topics.PaymentsDLQ)
	if err != nil {
		return err
	}
	reg := registry.New(d.kafka, d.log)
	lists := registry.NewLists(d.kafka, d.log)
	g.Go(func() error { return reg.Run(ctx) })
	g.Go(func() error { return lists.Run(ctx) })
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := reg.WaitReady(wctx); err != nil {
		return err
	}
	if err := lists.WaitReady(wctx); err != nil {
		return err
	}
	var rw *watch.Watcher
	if o.rulesPath != "" {
		var err error
		if rw, err = watch.Load(o.rulesPath, d.log, d.reg); err != nil {
			return err
		}
		if !published(reg, rw.Current().Digest) {
			if err := pushFile(ctx, reg, d, rw.Current()); err != nil {
				return err
			}
		}
		if o.pushOnSave {
			rw.OnChange = func(rs *rules.Ruleset) error { return pushFile(ctx, reg, d, rs) }
			g.Go(func() error { return rw.Run(ctx) })
		}
	}
	latest, _, ok := reg.Latest()
	if !ok {
		return errors.New("no ruleset published yet: give --rules FILE or run `fraudpipe rules push FILE`")
	}
	partitions, err := d.kafka.PartitionCount(ctx, string(topics.Payments))
	if err != nil {
		return err
	}
	m := detector.NewMetrics(d.reg)
	dir := filepath.Join(storage, string(detector.Group))
	pm := gokaadapter.NewProducerMetrics(d.reg, "fraudpipe-detector")
	sup := &processors.Supervisor{Name: "detector", Storage: dir, Log: d.log, Guard: guard, Metrics: d.procMetrics, Build: func() (*goka.Processor, error) {
		opts := append(gokaadapter.ProcessorOptions(d.kafka, "fraudpipe-detector", d.log, pm), processors.Storage(dir, int64(d.stateCacheMiB)<<20))
		return detector.New(d.kafka.Brokers, detector.Config{
			Rules: reg.LatestRuleset, Versions: reg, Lists: lists, Partitions: partitions, Partitioner: d.kafka.Partitioner, Metrics: m, Log: d.log,
			CountOnly: o.countOnly, Guard: guard, Decisions: o.decisions,
		}, opts...)
	}}
	metrics.RegisterLag(d.reg, string(detector.Group), sup.Current)
	d.health.Add("detector", sup.Status)
	g.Go(func() error { return sup.Run(ctx) })
	g.Go(func() error { return expireLoop(ctx, sup, o.expireEvery, d.log) })
	if o.countOnly {
		d.log.Warn("count-only: payments are counted, not scored; for benchmarks only")
	}
	d.log.Info("detector started", "partitions", partitions, "state", dir, "latest_ruleset", latest.Version)
	return nil
}

func published(reg *registry.Registry, digest string) bool {
	for _, v := range reg.List() {
		if v.Digest == digest {
			return true
		}
	}
	return false
}

func pushFile(ctx context.Context, reg *registry.Registry, d deps, rs *rules.Ruleset) error {
	v, changed, err := reg.Push(ctx, d.kafka, rs.Bundle, registry.Meta{Author: author(), Comment: "saved " + rs.Source})
	if err != nil {
		return err
	}
	if changed {
		d.log.Info("rules file published", "version", v.Version, "digest", v.Digest, "file", rs.Source)
	}
	return nil
}

// author names who pushes a version: FRAUDPIPE_AUTHOR, else the user and host.
func author() string {
	if a := os.Getenv("FRAUDPIPE_AUTHOR"); a != "" {
		return a
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); name == "" && err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
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
