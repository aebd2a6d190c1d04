package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/api"
	"github.com/fraudpipe/fraudpipe/topics"
)

// embeddedRetain caps --api-retain with the embedded Redis.
const embeddedRetain = 10 * time.Minute

// envAPIKeys holds the decision API's keys, name:key,...: secrets, from the environment only.
const envAPIKeys = "FRAUDPIPE_API_KEYS"

// apiFlags configure the decision API.
type apiFlags struct {
	addr        string
	redisURL    string
	redisCA     string
	deadline    time.Duration
	maxDeadline time.Duration
	fallback    string
	rate        float64
	burst       int
	retain      time.Duration
}

func (a *apiFlags) register(fs *flag.FlagSet, addrDefault string, redis bool) {
	fs.StringVar(&a.addr, "api-addr", addrDefault, "listen address of the decision API (empty: off)")
	if redis {
		fs.StringVar(&a.redisURL, "redis", "", "Redis URL the API instances share (decisions, claims, replies), e.g. redis://:password@host:6379/0 (default: an embedded in-memory Redis, for one instance)")
		fs.StringVar(&a.redisCA, "redis-ca-file", "", "PEM CA certificates that sign Redis's TLS certificate (with rediss://)")
	}
	fs.DurationVar(&a.deadline, "api-deadline", 250*time.Millisecond, "how long a request waits for its decision unless its "+api.HeaderDeadline+" header says")
	fs.DurationVar(&a.maxDeadline, "api-max-deadline", 10*time.Second, "the longest deadline a request may ask for")
	fs.StringVar(&a.fallback, "api-fallback", "review", "the answer when the decision misses the deadline: approve, review or block (or decline, the same as block); marked \"fallback\": true")
	fs.Float64Var(&a.rate, "api-rate", 50000, "requests per second allowed per API key (0: unlimited)")
	fs.IntVar(&a.burst, "api-burst", 5000, "requests an API key may send at once above its rate")
	fs.DurationVar(&a.retain, "api-retain", 24*time.Hour, "how long a payment's decision stays answerable to GET and to retries (at most 10m with fraudpipe run's embedded Redis)")
}

// startAPI serves the decision API on a.addr: keys from FRAUDPIPE_API_KEYS, or, with devKeyDir != "" and none set
// (fraudpipe run), a random key written to devKeyDir/api.key.
func startAPI(ctx context.Context, g *errgroup.Group, d deps, a apiFlags, redisURL, redisCA, devKeyDir string) error {
	if a.addr == "" {
		return nil
	}
	keys, err := api.ParseKeys(os.Getenv(envAPIKeys))
	if err != nil {
		return err
	}
	var devNote string
	if len(keys) == 0 {
		if devKeyDir == "" {
			return fmt.Errorf("api: set %s (name:key,...; keys of %d characters or more) or --api-addr '' to turn it off", envAPIKeys, api.MinKeyLen)
		}
		if keys, devNote, err = devAPIKey(devKeyDir); err != nil {
			return err
		}
	}
	fallback, err := api.ParseFallback(a.fallback)
	if err != nil {
		return fmt.Errorf("--api-fallback: %w", err)
	}
	rdb, where, err := redisClient(ctx, redisURL, redisCA)
	if err != nil {
		return err
	}
	if redisURL == "" && a.retain > embeddedRetain {
		// The embedded Redis holds every key in this process and pauses while it expires them, in proportion.
		d.log.Info("api: decisions retained for less with the embedded Redis", "retain", embeddedRetain, "asked", a.retain)
		a.retain = embeddedRetain
	}
	if err := checkRedis(ctx, rdb); err != nil {
		return err
	}
	producer, err := d.kafka.NewProducer("fraudpipe-api", d.log)
	if err != nil {
		return err
	}
	store := api.NewStore(ctx, rdb, a.retain, d.log.With("part", "api"))
	// At a stop, the payments already taken are written before the client closes: a request answered with the
	// fallback was told its payment is submitted. (Close alone fails what it still holds.) Then their claims are
	// extended, so that a retry waits for their decisions instead of producing them again.
	g.Go(func() error {
		<-ctx.Done()
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := producer.Flush(fctx); err != nil {
			d.log.Error("api: payments still unwritten at the stop", "err", err)
		}
		producer.Close()
		store.Close(fctx)
		return nil
	})
	// Every payment of this instance carries the same header, read only: one for all.
	instance := api.NewInstanceID()
	headers := []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte(instance)}}
	srv, err := api.New(api.Config{
		Instance: instance, Store: store, Redis: rdb, Keys: keys,
		Deadline: a.deadline, MaxDeadline: a.maxDeadline, Fallback: fallback,
		RatePerKey: a.rate, Burst: a.burst, Metrics: api.NewMetrics(d.reg), Log: d.log.With("part", "api"),
		Produce: func(ctx context.Context, key string, value []byte, replyTo string, done func(error)) {
			h := headers
			if replyTo != instance { // the server names itself: the shared header serves
				h = []kgo.RecordHeader{{Key: topics.HeaderReplyTo, Value: []byte(replyTo)}}
			}
			// TryProduce: with the client's buffer full (the broker away), the write fails at once and the request
			// gets its 503, instead of every handler waiting for room.
			producer.TryProduce(ctx, &kgo.Record{Topic: topics.Payments, Key: []byte(key), Value: value, Headers: h},
				func(_ *kgo.Record, err error) { done(err) })
		},
	})
	if err != nil {
		return err
	}
	relay, err := api.NewRelay(d.kafka, store, srv, d.log.With("part", "api-relay"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("api: %w (--api-addr another address, or '' to turn the API off)", err)
	}
	d.health.Add("api", starting("joining the decisions relay group"))
	subscribed := make(chan struct{})
	g.Go(func() error { return relay.Run(ctx) })
	g.Go(func() error { return srv.Run(ctx, subscribed) })
	// Requests are taken once replies can reach this instance and the relay reads its partitions.
	g.Go(func() error {
		for _, ch := range []<-chan struct{}{subscribed, relay.Ready()} {
			select {
			case <-ch:
			case <-ctx.Done():
				ln.Close()
				return nil
			}
		}
		d.health.Remove("api")
		d.log.Info("decision API listening", "url", "http://"+ln.Addr().String(), "redis", where, "keys", devNote)
		return srv.Serve(ctx, ln)
	})
	return nil
}

// devAPIKey makes the key "dev", random, written to dir/api.key (mode 0600), never logged.
func devAPIKey(dir string) (api.Keys, string, error) {
	key := rand.Text() + rand.Text() // 256 bits; one is shorter than api.MinKeyLen
	keys, err := api.ParseKeys("dev:" + key)
	if err != nil {
		return nil, "", err
	}
	path, err := writeDevSecret(dir, "api.key", key)
	if err != nil {
		return nil, "", err
	}
	return keys, "key in " + path + " (set " + envAPIKeys + " to choose keys)", nil
}

func apiCommand() *ffcli.Command {
	var c partConfig
	fs := c.common("api", "127.0.0.1:9105")
	c.api.register(fs, "127.0.0.1:8081", true)
	return &ffcli.Command{
		Name: "api", ShortUsage: "fraudpipe api [flags]", FlagSet: fs, Options: envOptions,
		ShortHelp: "Serve the decision API (POST /v1/payments); run several behind a load balancer, sharing one Redis.",
		Exec: func(ctx context.Context, _ []string) error {
			if c.api.redisURL == "" {
				// An embedded Redis per process would split the instances: each relay records and publishes into
				// its own, and the others' requests would never hear their decisions.
				return errors.New("fraudpipe api: give --redis, the Redis every API instance shares (fraudpipe run has an embedded one, for one instance)")
			}
			return c.runPart(ctx, func(ctx context.Context, g *errgroup.Group, d deps, _ string) error {
				return startAPI(ctx, g, d, c.api, c.api.redisURL, c.api.redisCA, "")
			})
		},
	}
}
