// Package notifier is the service that turns alerts into notifications: email over SMTP, SMS through a
// Twilio-compatible API, Web Push, and the log channel, which always runs. It is a goka group of its own over
// the alerts topic, scaled by its own consumer group, with Redis as its datastore (see Store).
//
// Exactly-once effect per (alert, channel, recipient) over Kafka's at-least-once delivery: each delivery is
// claimed in Redis before it is attempted and marked sent after, so a redelivered alert, a duplicate alert
// record, a restart or a rebalance does not send it again. The goka callback returns only when every delivery
// of the alert is settled (sent, dead-lettered, or parked durably in Redis), so the alert's offset is committed
// only then.
package notifier

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Group is the notifier's consumer group. It keeps no goka table: its state is in Redis.
const Group goka.Group = "notifier"

// Deps is what the notifier processor needs besides the cluster.
type Deps struct {
	Dispatcher *Dispatcher
	Metrics    *Metrics
	Log        *slog.Logger
	// Guard keeps poison records from stopping the notifier (processors.Guard); the Supervisor shares it across
	// restarts. nil: a guard of its own, dead-lettering to alerts.dlq.
	Guard *processors.Guard
}

type processor struct{ Deps }

// New builds the notifier processor. cmd/ and the tests build it through here alike.
func New(brokers []string, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	if deps.Guard == nil {
		deps.Guard = &processors.Guard{Name: string(Group), DeadLetters: topics.AlertsDLQ, Log: deps.Log}
	}
	n := &processor{deps}
	g := goka.DefineGroup(Group, goka.Input(topics.Alerts, topics.Raw{}, deps.Guard.Wrap(n.process)),
		goka.Output(topics.AlertsDLQ, topics.Raw{}))
	// Null values reach the guard, which dead-letters them, instead of being dropped without a trace.
	p, err := goka.NewProcessor(brokers, g, append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	return p, nil
}

func (n *processor) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := topics.AlertCodec{}.Decode(raw)
	if err != nil {
		// Only a broken producer writes such a record; it must not stall the partition.
		n.Metrics.Malformed.Inc()
		processors.PanicReject(topics.ReasonNotAlert, err)
	}
	a := v.(*topics.Alert)
	n.Metrics.Alerts.WithLabelValues(string(a.Action)).Inc()
	if err := n.Dispatcher.Handle(ctx.Context(), a); err != nil {
		// Not committed: the alert is delivered again after the processor restarts; settled deliveries are not
		// repeated.
		processors.PanicFail(ctx, fmt.Errorf("alert %s: %w", a.ID, err))
	}
}

// FormatRules renders fired rules as "name +score: reason; ...".
func FormatRules(fired []rules.Fired) string {
	parts := make([]string, len(fired))
	for i, f := range fired {
		parts[i] = fmt.Sprintf("%s +%d: %s", f.Name, f.Score, f.Reason)
	}
	return strings.Join(parts, "; ")
}

// Metrics are the notifier's Prometheus metrics.
type Metrics struct {
	Alerts             *prometheus.CounterVec // by action
	Deliveries         *prometheus.CounterVec // by channel and outcome
	Retries            *prometheus.CounterVec // by channel
	Duplicates         *prometheus.CounterVec // by channel: deliveries already settled, suppressed
	PossibleDuplicates *prometheus.CounterVec // by channel: sends after an attempt whose outcome was lost
	DLQ                *prometheus.CounterVec // by channel
	Latency            *prometheus.HistogramVec
	Breaker            *prometheus.GaugeVec // by channel: 0 closed, 1 half-open, 2 open
	RedisUp            prometheus.Gauge
	NoCustomer         prometheus.Counter
	Malformed          prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Alerts:             metrics.CounterVec("fraudpipe_notifier_alerts_total", "Alerts handled by the notifier, by action.", "action"),
		Deliveries:         metrics.CounterVec("fraudpipe_notifier_deliveries_total", "Delivery outcomes (sent, failed, deferred, retrying), by channel.", "channel", "outcome"),
		Retries:            metrics.CounterVec("fraudpipe_notifier_retries_total", "Immediate retries of a send after a temporary failure.", "channel"),
		Duplicates:         metrics.CounterVec("fraudpipe_notifier_duplicates_suppressed_total", "Deliveries already settled, not sent again (redelivered or duplicate alerts).", "channel"),
		PossibleDuplicates: metrics.CounterVec("fraudpipe_notifier_possible_duplicates_total", "Sends after an earlier attempt whose outcome was lost (an instance died mid-send): the recipient may get the message twice.", "channel"),
		DLQ:                metrics.CounterVec("fraudpipe_notifier_dlq_total", "Deliveries sent to notifications.dlq.", "channel"),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fraudpipe_notifier_provider_latency_seconds", Help: "Duration of one send to a provider.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"channel"}),
		Breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudpipe_notifier_breaker_state", Help: "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
		}, []string{"channel"}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraudpipe_notifier_redis_up", Help: "1 while Redis answers; 0 while the notifier waits for it.",
		}),
		NoCustomer: metrics.Counter("fraudpipe_notifier_no_customer_total", "Alerts for accounts without a customer record (logged only)."),
		Malformed:  metrics.Counter("fraudpipe_notifier_malformed_total", "Records on the alerts topic that are not alerts (dead-lettered to alerts.dlq)."),
	}
	if reg != nil {
		reg.MustRegister(m.Alerts, m.Deliveries, m.Retries, m.Duplicates, m.PossibleDuplicates, m.DLQ, m.Latency,
			m.Breaker, m.RedisUp, m.NoCustomer, m.Malformed)
	}
	return m
}
