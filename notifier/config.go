package notifier

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/rules"
)

// The delivery channels besides the log channel, which always runs.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
	ChannelPush  = "push"
)

// Config is the notifier config file: where alerts go, how fast, and through which providers. Secrets are never
// in the file: they come from the environment variables named below.
type Config struct {
	// Routes maps an alert action (review, block) to the channels it goes to.
	Routes map[rules.Action][]string `yaml:"routes"`
	// QuietHoursBypass lists the actions delivered even in a customer's quiet hours.
	QuietHoursBypass []rules.Action `yaml:"quiet_hours_bypass"`
	// RateLimits caps deliveries per account and channel; what is over the limit waits, it is not dropped.
	RateLimits map[string]RateLimit `yaml:"rate_limits"`
	Retry      Retry                `yaml:"retry"`
	// Templates is a directory whose files override the built-in templates (see templates/).
	Templates string       `yaml:"templates"`
	Email     *EmailConfig `yaml:"email"`
	SMS       *SMSConfig   `yaml:"sms"`
	Push      *PushConfig  `yaml:"push"`
	// Confirm puts a signed "Was this you?" link in the messages of some alerts (see docs/notifications.md).
	Confirm *ConfirmConfig `yaml:"confirm"`
}

// ConfirmConfig is where customers answer "Was this you?": the console's /confirm page, behind your public URL.
type ConfirmConfig struct {
	// URL is the page's public address; a message links to URL/<token>.
	URL string `yaml:"url"`
	// Actions are the alerts whose messages carry the link (default: block).
	Actions []rules.Action `yaml:"actions"`
	// TTL is how long a link can be answered (default 72h).
	TTL time.Duration `yaml:"ttl"`
	// Key signs the links: from FRAUDPIPE_CONFIRM_KEY, the same for the console that checks them.
	Key string `yaml:"-"`
}

// RateLimit is Limit deliveries per Per.
type RateLimit struct {
	Limit int           `yaml:"limit"`
	Per   time.Duration `yaml:"per"`
}

// Retry bounds the attempts of one delivery.
type Retry struct {
	Attempts int           `yaml:"attempts"` // attempts in a row before the delivery is parked for later
	Initial  time.Duration `yaml:"initial"`  // first backoff
	Max      time.Duration `yaml:"max"`      // backoff cap
	Budget   time.Duration `yaml:"budget"`   // from the first attempt; after it the delivery goes to notifications.dlq
	Lease    time.Duration `yaml:"lease"`    // how long a claim on a delivery holds before another instance may take over
	// BreakerTimeout is how long a provider's open circuit breaker refuses sends before it lets one through.
	BreakerTimeout time.Duration `yaml:"breaker_timeout"`
}

// EmailConfig is an SMTP server. The password comes from FRAUDPIPE_SMTP_PASSWORD.
type EmailConfig struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	From     string `yaml:"from"`
	Username string `yaml:"username"`
	TLS      string `yaml:"tls"` // starttls (default), tls, none
	Password string `yaml:"-"`
}

// SMSConfig is a Twilio-compatible Messages API. The token comes from FRAUDPIPE_SMS_TOKEN.
type SMSConfig struct {
	BaseURL    string        `yaml:"base_url"`
	Timeout    time.Duration `yaml:"timeout"` // per request; default 10s
	AccountSID string        `yaml:"account_sid"`
	From       string        `yaml:"from"`
	Token      string        `yaml:"-"`
}

// PushConfig is Web Push with VAPID. The private key comes from FRAUDPIPE_VAPID_PRIVATE_KEY.
type PushConfig struct {
	Subscriber     string        `yaml:"subscriber"` // mailto: or https: contact for push services
	VAPIDPublicKey string        `yaml:"vapid_public_key"`
	TTL            time.Duration `yaml:"ttl"`
	PrivateKey     string        `yaml:"-"`
}

// Environment variables that hold the providers' secrets.
const (
	EnvSMTPPassword    = "FRAUDPIPE_SMTP_PASSWORD"
	EnvSMSToken        = "FRAUDPIPE_SMS_TOKEN"
	EnvVAPIDPrivateKey = "FRAUDPIPE_VAPID_PRIVATE_KEY"
	EnvConfirmKey      = "FRAUDPIPE_CONFIRM_KEY"
)

// DefaultConfig routes review alerts to email and block alerts to every channel, lets block alerts through
// quiet hours, and configures no provider: deliveries then go to the log channel only.
func DefaultConfig() Config {
	c := Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Routes == nil {
		c.Routes = map[rules.Action][]string{
			rules.ActionReview: {ChannelEmail},
			rules.ActionBlock:  {ChannelEmail, ChannelSMS, ChannelPush},
		}
	}
	if c.QuietHoursBypass == nil {
		c.QuietHoursBypass = []rules.Action{rules.ActionBlock}
	}
	if c.RateLimits == nil {
		c.RateLimits = map[string]RateLimit{
			ChannelEmail: {Limit: 20, Per: time.Hour}, ChannelSMS: {Limit: 5, Per: time.Hour}, ChannelPush: {Limit: 20, Per: time.Hour},
		}
	}
	r := &c.Retry
	r.Attempts = cmp(r.Attempts, 4)
	r.Initial = cmp(r.Initial, 200*time.Millisecond)
	r.Max = cmp(r.Max, 5*time.Second)
	r.Budget = cmp(r.Budget, time.Hour)
	r.Lease = cmp(r.Lease, 30*time.Second)
	r.BreakerTimeout = cmp(r.BreakerTimeout, 30*time.Second)
	if c.Confirm != nil {
		if c.Confirm.Actions == nil {
			c.Confirm.Actions = []rules.Action{rules.ActionBlock}
		}
		c.Confirm.TTL = cmp(c.Confirm.TTL, 72*time.Hour)
		c.Confirm.Key = os.Getenv(EnvConfirmKey)
	}
	if c.Email != nil {
		c.Email.Port = cmp(c.Email.Port, 587)
		if c.Email.TLS == "" {
			c.Email.TLS = "starttls"
		}
		c.Email.Password = os.Getenv(EnvSMTPPassword)
	}
	if c.SMS != nil {
		if c.SMS.BaseURL == "" {
			c.SMS.BaseURL = "https://api.twilio.com"
		}
		c.SMS.Token = os.Getenv(EnvSMSToken)
		c.SMS.Timeout = cmp(c.SMS.Timeout, 10*time.Second)
	}
	if c.Push != nil {
		c.Push.TTL = cmp(c.Push.TTL, 24*time.Hour)
		c.Push.PrivateKey = os.Getenv(EnvVAPIDPrivateKey)
	}
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Validate reports every problem of the config.
func (c *Config) Validate() error {
	var errs []error
	known := []string{ChannelEmail, ChannelSMS, ChannelPush}
	for action, chans := range c.Routes {
		if action != rules.ActionReview && action != rules.ActionBlock {
			errs = append(errs, fmt.Errorf("routes: unknown action %q (review, block)", action))
		}
		for _, ch := range chans {
			if !slices.Contains(known, ch) {
				errs = append(errs, fmt.Errorf("routes.%s: unknown channel %q (email, sms, push)", action, ch))
			}
		}
	}
	for ch, rl := range c.RateLimits {
		if !slices.Contains(known, ch) {
			errs = append(errs, fmt.Errorf("rate_limits: unknown channel %q", ch))
		}
		if rl.Limit < 1 || rl.Per <= 0 {
			errs = append(errs, fmt.Errorf("rate_limits.%s: want limit >= 1 and a positive per", ch))
		}
	}
	if cf := c.Confirm; cf != nil {
		if u, err := url.Parse(cf.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("confirm.url: %q is not an http(s) URL", cf.URL))
		}
		for _, a := range cf.Actions {
			if a != rules.ActionReview && a != rules.ActionBlock {
				errs = append(errs, fmt.Errorf("confirm.actions: unknown action %q (review, block)", a))
			}
		}
		if len(cf.Key) < confirm.MinKeyBytes {
			errs = append(errs, fmt.Errorf("confirm: %s needs at least %d characters", EnvConfirmKey, confirm.MinKeyBytes))
		}
	}
	if c.Retry.Attempts < 1 || c.Retry.Max < c.Retry.Initial {
		errs = append(errs, errors.New("retry: want attempts >= 1 and max >= initial"))
	}
	if e := c.Email; e != nil {
		if e.Host == "" || e.From == "" {
			errs = append(errs, errors.New("email: host and from are required"))
		}
		if !slices.Contains([]string{"starttls", "tls", "none"}, e.TLS) {
			errs = append(errs, fmt.Errorf("email.tls: %q (starttls, tls, none)", e.TLS))
		}
		if e.Username != "" && e.Password == "" {
			errs = append(errs, fmt.Errorf("email: username set but %s is empty", EnvSMTPPassword))
		}
	}
	if s := c.SMS; s != nil {
		if s.AccountSID == "" || s.From == "" {
			errs = append(errs, errors.New("sms: account_sid and from are required"))
		}
		if s.Token == "" {
			errs = append(errs, fmt.Errorf("sms: %s is empty", EnvSMSToken))
		}
	}
	if p := c.Push; p != nil {
		if p.Subscriber == "" || p.VAPIDPublicKey == "" {
			errs = append(errs, errors.New("push: subscriber and vapid_public_key are required"))
		}
		if p.PrivateKey == "" {
			errs = append(errs, fmt.Errorf("push: %s is empty", EnvVAPIDPrivateKey))
		}
	}
	return errors.Join(errs...)
}

// LoadConfig reads a notifier config file; an empty path gives DefaultConfig.
func LoadConfig(path string) (Config, error) {
	var c Config
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read notifier config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
	}
	explicit := c.Routes != nil
	c.setDefaults()
	err := c.Validate()
	if explicit {
		err = errors.Join(err, c.unconfiguredRoutes())
	} else {
		c.dropUnconfigured()
	}
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// configured reports whether a channel has its provider section.
func (c *Config) configured(ch string) bool {
	switch ch {
	case ChannelEmail:
		return c.Email != nil
	case ChannelSMS:
		return c.SMS != nil
	case ChannelPush:
		return c.Push != nil
	}
	return false
}

// unconfiguredRoutes reports the routes a config file names to channels it gives no provider: such alerts would
// otherwise reach nobody on that channel, without a word.
func (c *Config) unconfiguredRoutes() error {
	var errs []error
	for _, action := range []rules.Action{rules.ActionReview, rules.ActionBlock} {
		for _, ch := range c.Routes[action] {
			if !c.configured(ch) && slices.Contains([]string{ChannelEmail, ChannelSMS, ChannelPush}, ch) {
				errs = append(errs, fmt.Errorf("routes.%s: channel %s has no %s: section; configure it or remove it from the route", action, ch, ch))
			}
		}
	}
	return errors.Join(errs...)
}

// dropUnconfigured keeps the default routes to the channels that have a provider.
func (c *Config) dropUnconfigured() {
	for action, chans := range c.Routes {
		c.Routes[action] = slices.DeleteFunc(slices.Clone(chans), func(ch string) bool { return !c.configured(ch) })
	}
}

// Secrets lists the set secret values, so they can be kept out of logs.
func (c *Config) Secrets() []string {
	var s []string
	if c.Email != nil && c.Email.Password != "" {
		s = append(s, c.Email.Password)
	}
	if c.SMS != nil && c.SMS.Token != "" {
		s = append(s, c.SMS.Token)
	}
	if c.Push != nil && c.Push.PrivateKey != "" {
		s = append(s, c.Push.PrivateKey)
	}
	if c.Confirm != nil && c.Confirm.Key != "" {
		s = append(s, c.Confirm.Key)
	}
	return s
}
