package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/kafka/gokaadapter"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/rules/registry"
	"github.com/fraudpipe/fraudpipe/rules/watch"
	"github.com/fraudpipe/fraudpipe/topics"
)

// deps is what the pipeline's parts share in one process.
type deps struct {
	kafka    kafka.Config
	stateDir string // local storage base; one subdirectory per cluster id
	// stateCacheMiB is the memory for local state values (processors/store): accounts that fit are read
	// without LevelDB.
	stateCacheMiB int
	reg           *prometheus.Registry
	log           *slog.Logger
	// health answers /healthz and /readyz; every part adds its check. procMetrics count restarts and dead
	// letters of every processor; records is the policy for records that keep failing.
	health      *metrics.Health
	procMetrics *processors.Metrics
	records     recordFlags
}

// defaultStateCacheMiB caches tables of up to about 1,300,000 accounts (about 400 bytes each with the records
// that re-scoring after a late payment needs, mapped outside the Go heap, so a MiB of cache is a MiB of RSS), with
// room left for the rest of the detector within 1 GiB at a million accounts (docs/performance.md).
const (
	defaultStateCacheMiB = 512
	stateCacheHelp       = "MiB of memory that caches whole state tables (reads never reach LevelDB); tables beyond it are read from LevelDB"
)

// prepare waits for the cluster, agrees on the pipeline's partitioner, creates the pipeline's topics and returns the local storage directory for it
// ("" when the part keeps no local state).
func (d *deps) prepare(ctx context.Context) (storage string, err error) {
	if err := d.kafka.Validate(); err != nil {
		return "", err
	}
	if err := d.kafka.WaitForCluster(ctx, d.log); err != nil {
		return "", err
	}
	if d.kafka, err = createPipeline(ctx, d.kafka, d.log); err != nil {
		return "", err
	}
	if d.stateDir == "" {
		return "", nil
	}
	id, err := d.kafka.ClusterID(ctx)
	if err != nil {
		return "", err
	}
	return processors.StorageDir(d.stateDir, id, d.log)
}

// detectorOptions are the detector's settings that the run command and the detector command share.
type detectorOptions struct {
	rulesPath   string
	pushOnSave  bool
	expireEvery time.Duration
	countOnly   bool // benchmarks: score nothing (detector.Config.CountOnly)
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
			CountOnly: o.countOnly, Guard: guard,
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

// notifierFlags configure the notifier wherever it runs (run, notifier).
type notifierFlags struct {
	config   string
	redisURL string
	redisCA  string
	alertLog string
}

func (n *notifierFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.config, "notifier-config", "", "notifier config file: routing, rate limits, providers (default: log channel only; see examples/notifier.yaml)")
	fs.StringVar(&n.redisURL, "redis", "", "Redis URL for the notifier's state, e.g. redis://:password@host:6379/0 or rediss:// for TLS (default: an embedded in-memory Redis)")
	fs.StringVar(&n.redisCA, "redis-ca-file", "", "PEM CA certificates that sign Redis's TLS certificate (with rediss://; default: system roots)")
	fs.StringVar(&n.alertLog, "alert-log", "-", "where the log channel writes one line per alert and per delivery (-: stdout)")
}

// startNotifier runs the notifier group, the customer replica and the parked-delivery scheduler in g.
func startNotifier(ctx context.Context, g *errgroup.Group, d deps, nf notifierFlags, alerts *slog.Logger) error {
	d.health.Add("notifier", starting("connecting to redis"))
	guard, err := d.records.guard(d, string(notifier.Group), topics.AlertsDLQ)
	if err != nil {
		return err
	}
	cfg, err := notifier.LoadConfig(nf.config)
	if err != nil {
		return err
	}
	m := notifier.NewMetrics(d.reg)
	redis.SetLogger(redisLogger{d.log})
	rdb, where, err := redisClient(ctx, nf.redisURL, nf.redisCA)
	if err != nil {
		return err
	}
	if err := checkRedis(ctx, rdb); err != nil {
		return err
	}
	// While Redis does not answer the notifier pauses (Store): not ready, but live, since it resumes by itself.
	g.Go(func() error {
		return probeLoop(ctx, d.health, "redis", checkEvery, 0, where, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	})
	store := notifier.NewStore(rdb, d.log, func(up bool) { m.RedisUp.Set(map[bool]float64{true: 1}[up]) })
	tmpl, err := notifier.LoadTemplates(cfg.Templates)
	if err != nil {
		return err
	}
	senders := map[string]notifier.Sender{}
	if cfg.Email != nil {
		senders[notifier.ChannelEmail] = notifier.NewEmailSender(cfg.Email)
	}
	if cfg.SMS != nil {
		senders[notifier.ChannelSMS] = notifier.NewSMSSender(cfg.SMS)
	}
	if cfg.Push != nil {
		senders[notifier.ChannelPush] = notifier.NewPushSender(cfg.Push)
	}
	if len(senders) > 0 && nf.redisURL == "" {
		d.log.Warn("providers are configured with the embedded Redis: deliveries parked for later do not survive a restart; use --redis")
	}
	repl, err := notifier.NewReplicator(d.kafka, store, d.log)
	if err != nil {
		return err
	}
	dlq, err := notifier.NewKafkaDeadLetters(d.kafka, d.log)
	if err != nil {
		return err
	}
	disp := notifier.NewDispatcher(cfg, notifier.DispatcherDeps{
		Store: store, Senders: senders, Templates: tmpl, DLQ: dlq, Ready: repl.Ready, Metrics: m, Log: d.log, AlertLog: alerts,
	})
	pm := gokaadapter.NewProducerMetrics(d.reg, "fraudpipe-notifier")
	sup := &processors.Supervisor{Name: "notifier", Log: d.log, Guard: guard, Metrics: d.procMetrics, Build: func() (*goka.Processor, error) {
		return notifier.New(d.kafka.Brokers, notifier.Deps{Dispatcher: disp, Metrics: m, Log: d.log, Guard: guard},
			gokaadapter.ProcessorOptions(d.kafka, "fraudpipe-notifier", d.log, pm)...)
	}}
	metrics.RegisterLag(d.reg, string(notifier.Group), sup.Current)
	d.health.Add("notifier", sup.Status)
	g.Go(func() error { defer dlq.Close(); return sup.Run(ctx) })
	g.Go(func() error { return repl.Run(ctx) })
	g.Go(func() error { return disp.RunDeferred(ctx, 500*time.Millisecond) })
	channels := []string{notifier.ChannelLog}
	for ch := range senders {
		channels = append(channels, ch)
	}
	slices.Sort(channels)
	d.log.Info("notifier started", "channels", strings.Join(channels, ","), "redis", where)
	return nil
}

// redisLogger sends go-redis's own messages (one per failed dial while Redis is down) to slog at debug level:
// the notifier reports outages itself, once.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

// checkRedis fails start-up on a Redis that answers with an error (a wrong password, a missing ACL), which no
// amount of waiting fixes. A Redis that does not answer at all is not an error: the notifier waits for it.
func checkRedis(ctx context.Context, rdb redis.UniversalClient) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rerr redis.Error
	if err := rdb.Ping(pctx).Err(); errors.As(err, &rerr) {
		return fmt.Errorf("redis refused the notifier: %w", err)
	}
	return nil
}

// redisClient connects to the Redis at url, or starts the embedded one. It returns where it is, without
// credentials, for the log.
func redisClient(ctx context.Context, url, caFile string) (redis.UniversalClient, string, error) {
	if url == "" {
		r, err := embedded.StartRedis(ctx)
		if err != nil {
			return nil, "", err
		}
		context.AfterFunc(ctx, r.Close)
		return redis.NewClient(&redis.Options{Addr: r.Addr()}), "embedded " + r.Addr(), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, "", fmt.Errorf("--redis: %w", err)
	}
	if caFile != "" {
		if opts.TLSConfig == nil {
			return nil, "", fmt.Errorf("--redis-ca-file needs a rediss:// URL")
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("--redis-ca-file: %w", err)
		}
		opts.TLSConfig.RootCAs = x509.NewCertPool()
		if !opts.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("--redis-ca-file %s: no certificate found", caFile)
		}
	}
	where := opts.Addr
	if opts.TLSConfig != nil {
		where += " (TLS)"
	}
	return redis.NewClient(opts), where, nil
}
