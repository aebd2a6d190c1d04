package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// ChannelLog is the log channel: one line per alert, always on, settled exactly once like any other channel.
const ChannelLog = "log"

// DeadLetters receives deliveries that failed for good.
type DeadLetters interface {
	DeadLetter(ctx context.Context, d topics.DeadDelivery) error
}

// Dispatcher turns an alert into deliveries and settles each of them exactly once: sent, failed to the
// dead-letter topic, or parked in Redis for later (quiet hours, rate limit, provider trouble). Handle returns
// only when every delivery of the alert is settled, so the caller may then commit the alert's offset.
type Dispatcher struct {
	cfg       Config
	store     *Store
	senders   map[string]Sender
	breakers  map[string]*gobreaker.CircuitBreaker[struct{}]
	templates *Templates
	dlq       DeadLetters
	smsLinks  SMSLinks
	ready     func(context.Context) error // waits for the customer replica
	metrics   *Metrics
	log       *slog.Logger // diagnostics
	alertLog  *slog.Logger // the log channel
	now       func() time.Time

	mu         sync.Mutex
	halfOpenAt map[string]time.Time // per channel whose breaker is open: when it lets a trial send through
}

// DispatcherDeps are the parts a Dispatcher works with.
type DispatcherDeps struct {
	Store     *Store
	Senders   map[string]Sender // by channel; a channel without a sender is not delivered (only logged)
	Templates *Templates
	DLQ       DeadLetters
	// SMSLinks remembers the confirmation links sent by SMS, for replies (nil: replies are not possible).
	SMSLinks SMSLinks
	Ready    func(context.Context) error
	Metrics  *Metrics
	Log      *slog.Logger
	AlertLog *slog.Logger
	Now      func() time.Time
}

// NewDispatcher builds a dispatcher with one circuit breaker per provider.
func NewDispatcher(cfg Config, d DispatcherDeps) *Dispatcher {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Ready == nil {
		d.Ready = func(context.Context) error { return nil }
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	ds := &Dispatcher{cfg: cfg, store: d.Store, senders: d.Senders, templates: d.Templates, dlq: d.DLQ, smsLinks: d.SMSLinks, ready: d.Ready,
		metrics: d.Metrics, log: d.Log, alertLog: d.AlertLog, now: d.Now, breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{},
		halfOpenAt: map[string]time.Time{}}
	for ch := range d.Senders {
		ds.metrics.Breaker.WithLabelValues(ch).Set(0)
		ds.breakers[ch] = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: ch, MaxRequests: 1, Timeout: cfg.Retry.BreakerTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
			// A permanent error (a bad address, a gone subscription) says nothing about the provider's health.
			IsSuccessful: func(err error) bool { return err == nil || !IsTemporary(err) },
			OnStateChange: func(name string, from, to gobreaker.State) {
				ds.mu.Lock()
				if to == gobreaker.StateOpen {
					ds.halfOpenAt[name] = ds.now().Add(cfg.Retry.BreakerTimeout)
				} else {
					delete(ds.halfOpenAt, name)
				}
				ds.mu.Unlock()
				ds.metrics.Breaker.WithLabelValues(name).Set(float64(to))
				ds.log.Warn("circuit breaker changed state", "channel", name, "from", from.String(), "to", to.String())
			},
		})
	}
	return ds
}

// Handle delivers an alert on every channel its action routes to.
func (d *Dispatcher) Handle(ctx context.Context, a *topics.Alert) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	if err := d.store.saveAlert(ctx, a); err != nil {
		return err
	}
	c, err := d.store.customer(ctx, a.AccountID)
	if err != nil {
		return err
	}
	jobs := d.plan(a, c)
	g, gctx := errgroup.WithContext(ctx)
	for _, j := range jobs {
		g.Go(func() error { return d.attempt(gctx, j, a, c) })
	}
	return g.Wait()
}

// plan lists the deliveries of an alert: the log line, then each routed channel and recipient.
func (d *Dispatcher) plan(a *topics.Alert, c *topics.Customer) []job {
	now := d.now().UTC()
	mk := func(ch, to string) job {
		return job{AlertID: a.DeliveryID(), AccountID: a.AccountID, Channel: ch, Recipient: to, First: now}
	}
	jobs := []job{mk(ChannelLog, "-")}
	var routed []string
	for _, ch := range d.cfg.Routes[a.Action] {
		if d.senders[ch] != nil { // a channel without a configured provider is not delivered
			routed = append(routed, ch)
		}
	}
	if len(routed) > 0 && c == nil {
		d.metrics.NoCustomer.Inc()
		d.log.Warn("no customer record for alert; logged only", "account", a.AccountID, "alert", a.ID)
		return jobs
	}
	for _, ch := range routed {
		// A block is critical: customers cannot opt out of hearing about it.
		if !c.Wants(ch) && a.Action != rules.ActionBlock {
			continue
		}
		switch ch {
		case ChannelEmail:
			if c.Email != "" {
				jobs = append(jobs, mk(ch, c.Email))
			}
		case ChannelSMS:
			if c.Phone != "" {
				jobs = append(jobs, mk(ch, c.Phone))
			}
		case ChannelPush:
			for _, s := range c.Push {
				jobs = append(jobs, mk(ch, s.Endpoint))
			}
		}
	}
	return jobs
}

// attempt settles one delivery, or parks it. It returns an error only when it cannot know the outcome (the
// context ended, Redis answered with an error).
func (d *Dispatcher) attempt(ctx context.Context, j job, a *topics.Alert, c *topics.Customer) error {
	key, token := j.key(), newToken()
	status, wait, attempted, err := d.store.claim(ctx, key, token, d.cfg.Retry.Lease)
	if err != nil {
		return err
	}
	switch status {
	case sent, failed:
		d.metrics.Duplicates.WithLabelValues(j.Channel).Inc()
		return nil
	case busy: // another instance works on it; take it over if its lease runs out
		return d.park(ctx, j, d.now().Add(wait+10*time.Millisecond), "", "")
	}
	if j.Channel == ChannelLog {
		d.logAlert(ctx, a)
		d.metrics.Deliveries.WithLabelValues(ChannelLog, sent).Inc()
		return d.store.settle(ctx, key, token, sent, true)
	}
	release := func(unsure bool) error { return d.store.settle(ctx, key, token, "", !unsure) }

	if c != nil && c.QuietHours != nil && !slices.Contains(d.cfg.QuietHoursBypass, a.Action) {
		if quiet, end, _ := c.QuietHours.Window(d.now()); quiet {
			if err := release(false); err != nil {
				return err
			}
			return d.park(ctx, j, end, "deferred", "quiet hours until "+end.UTC().Format(time.RFC3339))
		}
	}
	if rl, ok := d.cfg.RateLimits[j.Channel]; ok && !j.Admitted {
		allowed, after, err := d.store.allow(ctx, j.AccountID, j.Channel, rl)
		if err != nil {
			return err
		}
		if !allowed {
			if err := release(false); err != nil {
				return err
			}
			return d.park(ctx, j, d.now().Add(after), "deferred", fmt.Sprintf("rate limit %d per %s", rl.Limit, rl.Per))
		}
		j.Admitted = true
	}

	m, err := d.templates.Render(j.Channel, j.Recipient, a, c)
	if err != nil {
		d.store.settle(ctx, key, token, failed, true)
		return d.fail(ctx, j, a, err)
	}
	for _, s := range c.Push {
		if s.Endpoint == j.Recipient {
			m.Push = &s
		}
	}
	if attempted {
		// An earlier attempt may have reached the provider before its instance died: this send may duplicate.
		d.metrics.PossibleDuplicates.WithLabelValues(j.Channel).Inc()
	}
	if err := d.store.markAttempt(ctx, key); err != nil {
		return err
	}
	j.Attempt++
	err = d.send(ctx, j.Channel, m)
	switch {
	case err == nil:
		d.rememberLink(ctx, j, m)
		if err := d.store.settle(ctx, key, token, sent, true); err != nil {
			return err
		}
		d.outcome(ctx, j, Outcome{Status: sent})
		return nil
	case ctx.Err() != nil:
		release(true)
		return ctx.Err()
	case IsTemporary(err) || errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		if d.now().Sub(j.First) >= d.cfg.Retry.Budget {
			d.store.settle(ctx, key, token, failed, true)
			return d.fail(ctx, j, a, fmt.Errorf("retry budget of %s spent: %w", d.cfg.Retry.Budget, err))
		}
		var t *TemporaryError
		unsure := errors.As(err, &t) && t.Unsure
		if err := release(unsure); err != nil {
			return err
		}
		delay := min(d.cfg.Retry.Initial<<min(j.Attempt, 20), 5*time.Minute)
		if errors.As(err, &t) && t.RetryAfter > delay {
			delay = t.RetryAfter
		}
		// With the provider's breaker open (this failure may have tripped it), try again when it lets a trial
		// send through, not on this delivery's own schedule: that may be minutes apart by now and would leave
		// the breaker open long past its timeout.
		if b := d.breakers[j.Channel]; b != nil && b.State() == gobreaker.StateOpen {
			delay = d.untilHalfOpen(j.Channel)
		}
		return d.park(ctx, j, d.now().Add(delay), "retrying", err.Error())
	default:
		d.store.settle(ctx, key, token, failed, true)
		return d.fail(ctx, j, a, err)
	}
}

// rememberLink records the link a sent SMS carried, so that the customer's reply finds it. Only once the SMS is
// sent: a number's newest record must be a link its owner has, or a reply would answer a payment they were never
// asked about. A failure is logged, not returned: the SMS went out and must not go again, and its link works.
func (d *Dispatcher) rememberLink(ctx context.Context, j job, m *Message) {
	if j.Channel != ChannelSMS || m.ConfirmToken == "" || d.smsLinks == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second) // within the delivery's lease
	defer cancel()
	if err := d.smsLinks.Remember(rctx, j.Recipient, m.ConfirmToken); err != nil {
		d.log.Error("sms link not remembered: a reply to this SMS will not be understood, its link still works",
			"alert", j.AlertID, "to", maskRecipient(j.Channel, j.Recipient), "err", err)
	}
}

// send tries a message a few times in a row with capped exponential backoff, through the provider's breaker.
func (d *Dispatcher) send(ctx context.Context, ch string, m *Message) error {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval, eb.MaxInterval = d.cfg.Retry.Initial, d.cfg.Retry.Max
	unsure := false
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if unsure {
			// The previous try may have reached the provider (it timed out after sending): this one may duplicate.
			d.metrics.PossibleDuplicates.WithLabelValues(ch).Inc()
		}
		_, err := d.breakers[ch].Execute(func() (struct{}, error) {
			// Timed inside the breaker: a send it refuses never reached the provider.
			start := d.now()
			err := d.senders[ch].Send(ctx, m)
			d.metrics.Latency.WithLabelValues(ch).Observe(d.now().Sub(start).Seconds())
			return struct{}{}, err
		})
		var t *TemporaryError
		unsure = errors.As(err, &t) && t.Unsure
		switch {
		case err == nil:
			return struct{}{}, nil
		case !errors.As(err, &t):
			return struct{}{}, backoff.Permanent(err) // permanent, or the breaker is open: stop here
		case t.RetryAfter > d.cfg.Retry.Max:
			return struct{}{}, backoff.Permanent(err) // the provider asks for a longer wait: park instead
		case t.RetryAfter > 0:
			d.metrics.Retries.WithLabelValues(ch).Inc()
			return struct{}{}, backoff.RetryAfter(int(t.RetryAfter.Seconds()))
		}
		d.metrics.Retries.WithLabelValues(ch).Inc()
		return struct{}{}, err
	}, backoff.WithBackOff(eb), backoff.WithMaxTries(uint(d.cfg.Retry.Attempts)), backoff.WithMaxElapsedTime(0))
	return err
}

// untilHalfOpen is how long a channel's open breaker still refuses sends (a little more, so the attempt finds it
// half-open); a half-open one with its trial under way answers soon.
func (d *Dispatcher) untilHalfOpen(ch string) time.Duration {
	d.mu.Lock()
	at, open := d.halfOpenAt[ch]
	d.mu.Unlock()
	if !open {
		return d.cfg.Retry.Initial
	}
	return max(at.Sub(d.now()), 0) + 10*time.Millisecond
}

// park stores a delivery for a later attempt at due and records why (status deferred or retrying; "" records
// nothing, for a delivery another instance holds).
func (d *Dispatcher) park(ctx context.Context, j job, due time.Time, status, detail string) error {
	j.Parks++
	if err := d.store.park(ctx, j, due); err != nil {
		return err
	}
	if status != "" {
		d.outcome(ctx, j, Outcome{Status: status, Detail: detail})
	}
	return nil
}

func (d *Dispatcher) fail(ctx context.Context, j job, a *topics.Alert, cause error) error {
	dd := topics.DeadDelivery{AlertID: a.ID, AccountID: a.AccountID, Channel: j.Channel,
		Recipient: maskRecipient(j.Channel, j.Recipient), Reason: cause.Error(), Attempts: j.Attempt, At: d.now().UTC(), Alert: a}
	if err := d.dlq.DeadLetter(ctx, dd); err != nil {
		return fmt.Errorf("dead-letter delivery of %s: %w", a.ID, err)
	}
	d.metrics.DLQ.WithLabelValues(j.Channel).Inc()
	d.outcome(ctx, j, Outcome{Status: failed, Detail: cause.Error()})
	return nil
}

// outcome records a delivery's outcome in Redis and writes the log channel's line for it.
func (d *Dispatcher) outcome(ctx context.Context, j job, o Outcome) {
	o.Channel, o.Recipient, o.Attempts, o.At = j.Channel, maskRecipient(j.Channel, j.Recipient), j.Attempt, d.now().UTC()
	d.metrics.Deliveries.WithLabelValues(j.Channel, o.Status).Inc()
	if err := d.store.record(ctx, j.AlertID, o); err != nil {
		d.log.Warn("could not record delivery outcome", "alert", j.AlertID, "err", err)
	}
	level := slog.LevelInfo
	if o.Status == failed {
		level = slog.LevelError
	}
	d.alertLog.Log(ctx, level, "DELIVERY "+o.Status, "alert", j.AlertID, "account", j.AccountID, "channel", j.Channel,
		"to", o.Recipient, "attempts", o.Attempts, "detail", o.Detail)
}

func (d *Dispatcher) logAlert(ctx context.Context, a *topics.Alert) {
	level := slog.LevelInfo
	if a.Action == rules.ActionBlock {
		level = slog.LevelWarn
	}
	d.alertLog.Log(ctx, level, "ALERT "+string(a.Action),
		"account", a.AccountID, "payment", a.PaymentID,
		"amount", rules.FormatAmount(a.Payment.Amount, a.Payment.Currency),
		"score", a.Score, "rules", FormatRules(a.Rules), "alert", a.ID, "ruleset", a.RulesetVersion)
}

// RunDeferred attempts parked deliveries as they fall due, until ctx is done.
func (d *Dispatcher) RunDeferred(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.runDue(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("parked deliveries", "err", err)
		}
	}
}

func (d *Dispatcher) runDue(ctx context.Context) error {
	jobs, members, err := d.store.due(ctx, d.now(), d.cfg.Retry.Lease, 100)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		a, err := d.store.loadAlert(ctx, j.AlertID)
		if err != nil {
			d.log.Error("parked delivery's alert is gone; dropping it", "alert", j.AlertID, "err", err)
			d.store.done(ctx, members[i])
			continue
		}
		c, err := d.store.customer(ctx, j.AccountID)
		if err != nil {
			return err
		}
		if err := d.attempt(ctx, j, a, c); err != nil {
			return err // the job stays parked and is taken again after its lease
		}
		if err := d.store.done(ctx, members[i]); err != nil {
			return err
		}
	}
	return nil
}
