package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	if k := os.Getenv(notifier.EnvConfirmKey); k != "" {
		if err := startConfirmations(ctx, g, d, &cc, storage, []byte(k)); err != nil {
			return err
		}
	}
	if err := startSMSReplies(ctx, g, d, &cc, c.smsReplyURL); err != nil {
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
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("console: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	d.log.Info("console listening", "url", "http://"+ln.Addr().String(), "sign_in", devNote)
	return nil
}

// startConfirmations runs the customer confirmation saga (processors/confirmations) and gives the console the
// "Was this you?" page: links signed with key (FRAUDPIPE_CONFIRM_KEY, the notifier's), answers to customer-answers.
func startConfirmations(ctx context.Context, g *errgroup.Group, d deps, cc *console.Config, storage string, key []byte) error {
	signer, err := confirm.NewSigner(key)
	if err != nil {
		return fmt.Errorf("%s: %w", notifier.EnvConfirmKey, err)
	}
	prod, err := d.kafka.NewProducer("fraudpipe-console", d.log)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, prod.Close)
	cc.Confirm = signer
	cc.Answers = func(ctx context.Context, a topics.CustomerAnswer) error {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return prod.ProduceSync(ctx, &kgo.Record{Topic: topics.CustomerAnswers, Key: []byte(a.AccountID), Value: b}).FirstErr()
	}
	guard, err := d.records.guard(d, string(confirmations.Group), topics.CustomerAnswersDLQ)
	if err != nil {
		return err
	}
	m := confirmations.NewMetrics(d.reg)
	pm := gokaadapter.NewProducerMetrics(d.reg, "fraudpipe-confirmations")
	dir := filepath.Join(storage, string(confirmations.Group))
	sup := &processors.Supervisor{Name: "confirmations", Storage: dir, Log: d.log, Guard: guard, Metrics: d.procMetrics, Build: func() (*goka.Processor, error) {
		opts := append(gokaadapter.ProcessorOptions(d.kafka, "fraudpipe-confirmations", d.log, pm), processors.Storage(dir, 16<<20))
		return confirmations.New(d.kafka.Brokers, confirmations.Config{Log: d.log, Metrics: m, Guard: guard}, opts...)
	}}
	metrics.RegisterLag(d.reg, string(confirmations.Group), sup.Current)
	d.health.Add("confirmations", sup.Status)
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

// devUser makes the user analyst with a random password, written to dir/console.password (mode 0600): the
// password of a developer's local console never goes to a log.
func devUser(dir string) (console.Users, string, error) {
	password := rand.Text()
	hash, err := console.HashPassword(password)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "console.password")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("console password: %w", err)
	}
	return console.Users{"analyst": []byte(hash)}, "user analyst, password in " + path + " (set " + envConsoleUsers + " to choose users)", nil
}

func consoleCommand() *ffcli.Command {
	var c partConfig
	fs := c.common("console", "127.0.0.1:9104")
	c.console.register(fs, "127.0.0.1:8080")
	fs.StringVar(&c.stateDir, "state-dir", "data/state", "local state of the confirmation saga (goka storage); each instance on a machine needs its own")
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
			return c.runPart(ctx, func(ctx context.Context, g *errgroup.Group, d deps, storage string) error {
				return startConsole(ctx, g, d, c.console, storage, "")
			})
		},
	}
}
