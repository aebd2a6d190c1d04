package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/console"
	"github.com/fraudpipe/fraudpipe/kafka/gokaadapter"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/processors/cases"
	"github.com/fraudpipe/fraudpipe/processors/confirmations"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The console's secrets come from the environment only, like the Kafka and SMTP passwords.
const (
	envConsoleUsers      = "FRAUDPIPE_CONSOLE_USERS"       // name:bcrypt-hash,...
	envConsoleSessionKey = "FRAUDPIPE_CONSOLE_SESSION_KEY" // 32 characters or more; consoles sharing it share sessions
	envTwilioAuthToken   = "FRAUDPIPE_TWILIO_AUTH_TOKEN"   // checks the signature of SMS replies (/sms/reply)
)

// consoleFlags configure the analysts' console.
type consoleFlags struct {
	addr        string
	proxyHeader string
	smsReplyURL string
}

func (c *consoleFlags) register(fs *flag.FlagSet, addrDefault string) {
	fs.StringVar(&c.addr, "console-addr", addrDefault, "listen address of the analysts' web console (empty: off)")
	fs.StringVar(&c.proxyHeader, "console-proxy-user-header", "", "trust this header (e.g. X-Forwarded-User) for the signed-in user: for a console behind an authenticating reverse proxy that sets it on every request; users then need no password here")
	fs.StringVar(&c.smsReplyURL, "sms-reply-url", "", "the public URL of the console's /sms/reply, exactly as entered at Twilio as the number's incoming-message webhook: customers answer \"Was this you?\" by replying YES or NO to the SMS (needs "+envTwilioAuthToken+" and "+notifier.EnvConfirmKey+")")
}

// startConsole serves the console on c.addr and feeds its live view from the alerts topic. Users come from
// FRAUDPIPE_CONSOLE_USERS; without them (and without a proxy), devPasswordDir != "" makes one user, analyst, with a
// random password written to a file there (fraudpipe run, on a developer's machine), and otherwise it refuses.
func startConsole(ctx context.Context, g *errgroup.Group, d deps, c consoleFlags, storage, devPasswordDir string) error {
	if c.addr == "" {
		return nil
	}
	users, err := console.ParseUsers(os.Getenv(envConsoleUsers))
	if err != nil {
		return err
	}
	var devNote string
	if len(users) == 0 && c.proxyHeader == "" {
		if devPasswordDir == "" {
			return fmt.Errorf("console: set %s (name:bcrypt-hash,...; fraudpipe console hash-password makes a hash) or --console-proxy-user-header, or --console-addr '' to turn it off", envConsoleUsers)
		}
		if users, devNote, err = devUser(devPasswordDir); err != nil {
			return err
		}
	}
	var key []byte
	if k := os.Getenv(envConsoleSessionKey); k != "" {
		key = []byte(k)
	}
	hub := console.NewHub(200)
	cc := console.Config{Users: users, ProxyHeader: c.proxyHeader, SessionKey: key, Alerts: hub, Log: d.log.With("part", "console")}
	// Customers' answers and analysts' actions go to Kafka through one producer.
	prod, err := d.kafka.NewProducer("fraudpipe-console", d.log)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, prod.Close)
	if k := os.Getenv(notifier.EnvConfirmKey); k != "" {
		if err := startConfirmations(ctx, g, d, &cc, storage, []byte(k), prod); err != nil {
			return err
		}
	}
	if err := startSMSReplies(ctx, g, d, &cc, c.smsReplyURL); err != nil {
		return err
	}
	if err := startCases(ctx, g, d, &cc, storage, prod); err != nil {
		return err
	}
	srv, err := console.New(cc)
	if err != nil {
		return err
	}
	opts, err := d.kafka.ClientOptions("fraudpipe-console", d.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("console: %w (--console-addr another address, or '' to turn the console off)", err)
	}
	// Requests end with ctx (the live feed streams until its request is done): a stop does not wait on open pages.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	g.Go(func() error { return console.Follow(ctx, opts, hub, d.log) })
	serveHTTP(ctx, g, "console", hs, ln, nil)
	d.log.Info("console listening", "url", "http://"+ln.Addr().String(), "sign_in", devNote)
	return nil
}

// startConfirmations runs the customer confirmation saga (processors/confirmations) and gives the console the
// "Was this you?" page: links signed with key (FRAUDPIPE_CONFIRM_KEY, the notifier's), answers to customer-answers.
func startConfirmations(ctx context.Context, g *errgroup.Group, d deps, cc *console.Config, storage string, key []byte, prod *kgo.Client) error {
	signer, err := confirm.NewSigner(key)
	if err != nil {
		return fmt.Errorf("%s: %w", notifier.EnvConfirmKey, err)
	}
	cc.Confirm = signer
	cc.Answers = func(ctx context.Context, a topics.CustomerAnswer) error {
		return produceJSON(ctx, prod, topics.CustomerAnswers, a.AccountID, a)
	}
	m := confirmations.NewMetrics(d.reg)
	return superviseGroup(ctx, g, d, confirmations.Group, storage, topics.CustomerAnswersDLQ,
		func(guard *processors.Guard, opts []goka.ProcessorOption) (*goka.Processor, error) {
			return confirmations.New(d.kafka.Brokers, confirmations.Config{Log: d.log, Metrics: m, Guard: guard}, opts...)
		})
}

// startCases runs the cases group (processors/cases) and gives the console its query side, a goka view of the
// cases table, and somewhere to send analysts' actions (case-commands). Consoles share the group: each runs its
// share of the partitions, and each view reads the whole table.
func startCases(ctx context.Context, g *errgroup.Group, d deps, cc *console.Config, storage string, prod *kgo.Client) error {
	m := cases.NewMetrics(d.reg)
	err := superviseGroup(ctx, g, d, cases.Group, storage, topics.CasesDLQ,
		func(guard *processors.Guard, opts []goka.ProcessorOption) (*goka.Processor, error) {
			return cases.New(d.kafka.Brokers, cases.Config{Log: d.log, Metrics: m, Guard: guard}, opts...)
		})
	if err != nil {
		return err
	}
	view, err := cases.NewView(d.kafka.Brokers, gokaadapter.ViewOptions(d.kafka, "fraudpipe-console-cases", d.log)...)
	if err != nil {
		return err
	}
	reader := cases.Reader{View: view}
	d.reg.MustRegister(cases.OpenCases{Each: reader.Each, Now: time.Now})
	var failed atomic.Pointer[string]
	d.health.Add("cases-view", func() metrics.Status {
		switch {
		case failed.Load() != nil:
			return metrics.Status{Live: true, Detail: "stopped: " + *failed.Load()}
		case !view.Recovered():
			return metrics.Status{Live: true, Detail: "reading the cases table"}
		}
		return metrics.Status{Live: true, Ready: true, Detail: "up to date"}
	})
	g.Go(func() error {
		// The view reconnects by itself; an error that still ends it leaves the console without case pages, not
		// the pipeline without its other parts.
		if err := view.Run(ctx); err != nil && ctx.Err() == nil {
			msg := err.Error()
			failed.Store(&msg)
			d.log.Error("cases view stopped; the console's case pages are unavailable until a restart", "err", err)
		}
		return nil
	})
	cc.Cases = reader
	cc.CaseCommands = func(ctx context.Context, c topics.CaseCommand) error {
		return produceJSON(ctx, prod, topics.CaseCommands, c.AccountID, c)
	}
	return nil
}

// superviseGroup runs a goka group of the console under a Supervisor: its guard sends poison records to dlq, its
// local storage lives under storage, and its lag and health are reported.
func superviseGroup(ctx context.Context, g *errgroup.Group, d deps, group goka.Group, storage string, dlq goka.Stream,
	build func(*processors.Guard, []goka.ProcessorOption) (*goka.Processor, error)) error {
	guard, err := d.records.guard(d, string(group), dlq)
	if err != nil {
		return err
	}
	client := "fraudpipe-" + string(group)
	pm := gokaadapter.NewProducerMetrics(d.reg, client)
	dir := filepath.Join(storage, string(group))
	sup := &processors.Supervisor{Name: string(group), Storage: dir, Log: d.log, Guard: guard, Metrics: d.procMetrics, Build: func() (*goka.Processor, error) {
		return build(guard, append(gokaadapter.ProcessorOptions(d.kafka, client, d.log, pm), processors.Storage(dir, 16<<20)))
	}}
	metrics.RegisterLag(d.reg, string(group), sup.Current)
	d.health.Add(string(group), sup.Status)
	g.Go(func() error { return sup.Run(ctx) })
	return nil
}

// startSMSReplies turns on the console's SMS reply webhook when it is configured (an auth token and the public
// URL), following sms-confirmations, where the notifier records the link each SMS carried, into the webhook's
// index.
func startSMSReplies(ctx context.Context, g *errgroup.Group, d deps, cc *console.Config, publicURL string) error {
	token := os.Getenv(envTwilioAuthToken)
	switch {
	case token == "" && publicURL == "":
		return nil
	case token == "":
		return fmt.Errorf("--sms-reply-url is set but %s is empty: replies could not be checked", envTwilioAuthToken)
	case publicURL == "":
		return fmt.Errorf("%s is set but --sms-reply-url is not: the signature covers the URL Twilio calls", envTwilioAuthToken)
	case cc.Confirm == nil:
		return fmt.Errorf("SMS replies answer confirmation links: set %s too", notifier.EnvConfirmKey)
	}
	var links *console.SMSLinks
	f := d.kafka.Follow(topics.SMSConfirmations, func(r *kgo.Record) { links.Apply(r.Key, r.Value) }, d.log)
	links = console.NewSMSLinks(cc.Confirm, time.Now, f.Ready())
	sr, err := console.NewSMSReplies(token, publicURL, links)
	if err != nil {
		return err
	}
	cc.SMSReplies = sr
	g.Go(func() error { return f.Run(ctx) })
	d.log.Info("console takes SMS replies", "url", publicURL)
	return nil
}

// produceJSON writes v as JSON to topic under key, and waits for the broker's acknowledgement.
func produceJSON(ctx context.Context, prod *kgo.Client, topic, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s record: %w", topic, err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("write to %s: %w", topic, err)
	}
	return nil
}

// devUser makes the user analyst with a random password, written to dir/console.password (mode 0600): the
// password of a developer's local console never goes to a log.
func devUser(dir string) (console.Users, string, error) {
	password := rand.Text()
	hash, err := console.HashPassword(password)
	if err != nil {
		return nil, "", err
	}
	path, err := writeDevSecret(dir, "console.password", password)
	if err != nil {
		return nil, "", err
	}
	return console.Users{"analyst": []byte(hash)}, "user analyst, password in " + path + " (set " + envConsoleUsers + " to choose users)", nil
}

func consoleCommand() *ffcli.Command {
	var c partConfig
	fs := c.common("console", "127.0.0.1:9104")
	c.console.register(fs, "127.0.0.1:8080")
	fs.StringVar(&c.stateDir, "state-dir", "data/state", "local state of the console's groups, the confirmation saga and the cases (goka storage); each instance on a machine needs its own")
	c.records.register(fs) // the console's groups dead-letter and retry records like the detector and the notifier
	return &ffcli.Command{
		Name: "console", ShortUsage: "fraudpipe console [flags] | fraudpipe console hash-password < password", FlagSet: fs, Options: envOptions,
		ShortHelp: "Serve the analysts' web console (users from " + envConsoleUsers + ").",
		Subcommands: []*ffcli.Command{{
			Name: "hash-password", ShortUsage: "fraudpipe console hash-password < password",
			ShortHelp: "Print the bcrypt hash of the password on stdin, for " + envConsoleUsers + ".",
			Exec: func(context.Context, []string) error {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read the password from stdin: %w", err)
				}
				h, err := console.HashPassword(strings.TrimRight(line, "\r\n"))
				if err != nil {
					return err
				}
				fmt.Println(h)
				return nil
			},
		}},
		Exec: func(ctx context.Context, _ []string) error {
			if err := preflight("", nil, c.records); err != nil {
				return err
			}
			return c.runPart(ctx, func(ctx context.Context, g *errgroup.Group, d deps, storage string) error {
				return startConsole(ctx, g, d, c.console, storage, "")
			})
		},
	}
}
