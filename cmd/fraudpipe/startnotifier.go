package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/kafka/gokaadapter"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/topics"
)

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
	if err := tmpl.WithConfirm(cfg.Confirm, time.Now); err != nil {
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
	var smsLinks notifier.SMSLinks
	closeLinks := func() {}
	if cfg.Confirm != nil && cfg.SMS != nil {
		// The SMS's links are remembered so that customers can answer by replying (the console's /sms/reply).
		signer, err := confirm.NewSigner([]byte(cfg.Confirm.Key))
		if err != nil {
			return err
		}
		links, err := notifier.NewKafkaSMSLinks(d.kafka, signer, d.log)
		if err != nil {
			return err
		}
		smsLinks, closeLinks = links, links.Close
	}
	disp := notifier.NewDispatcher(cfg, notifier.DispatcherDeps{
		Store: store, Senders: senders, Templates: tmpl, DLQ: dlq, SMSLinks: smsLinks, Ready: repl.Ready, Metrics: m, Log: d.log, AlertLog: alerts,
	})
	pm := gokaadapter.NewProducerMetrics(d.reg, "fraudpipe-notifier")
	sup := &processors.Supervisor{Name: "notifier", Log: d.log, Guard: guard, Metrics: d.procMetrics, Build: func() (*goka.Processor, error) {
		return notifier.New(d.kafka.Brokers, notifier.Deps{Dispatcher: disp, Metrics: m, Log: d.log, Guard: guard},
			gokaadapter.ProcessorOptions(d.kafka, "fraudpipe-notifier", d.log, pm)...)
	}}
	metrics.RegisterLag(d.reg, string(notifier.Group), sup.Current)
	d.health.Add("notifier", sup.Status)
	g.Go(func() error { defer dlq.Close(); defer closeLinks(); return sup.Run(ctx) })
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
		for _, s := range notifier.ScriptEquivalents() {
			r.Emulate(s.Digest, func(k embedded.Keys, keys, args []string) (any, error) { return s.Go(k, keys, args) })
		}
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
