// Package notifier is the service that turns alerts into notifications. It is a goka group of its own over the
// alerts topic, scaled by its own consumer group, and hands each alert to its channels; the log channel always
// runs.
package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Group is the notifier's consumer group. Its table keeps, per account, the ids of the alerts already
// delivered, so the duplicates that at-least-once delivery brings (a detector re-emitting after a crash, a
// notifier restart) are not delivered twice.
const Group goka.Group = "notifier"

// Table is the notifier's group table.
var Table = goka.GroupTable(Group)

// recentAlerts is how many delivered alert ids an account remembers.
const recentAlerts = 256

// Channel delivers an alert somewhere.
type Channel interface {
	Name() string
	Deliver(ctx context.Context, a *topics.Alert) error
}

// Config is what the notifier needs besides the cluster.
type Config struct {
	Channels []Channel
	Metrics  *Metrics
	Log      *slog.Logger
}

type notifier struct{ Config }

// New builds the notifier processor.
func New(brokers []string, cfg Config, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	n := &notifier{cfg}
	g := goka.DefineGroup(Group,
		goka.Input(topics.Alerts, topics.Raw{}, n.process),
		goka.Persist(topics.IDsCodec{}),
	)
	p, err := goka.NewProcessor(brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	return p, nil
}

func (n *notifier) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := topics.AlertCodec{}.Decode(raw)
	if err != nil {
		// Only a broken producer writes such a record; it must not stall the partition.
		n.Metrics.Malformed.Inc()
		n.Log.Error("skipping malformed alert", "err", err, "partition", ctx.Partition(), "offset", ctx.Offset())
		return
	}
	a := v.(*topics.Alert)
	delivered, _ := ctx.Value().([]string)
	if slices.Contains(delivered, a.ID) {
		n.Metrics.Duplicates.Inc()
		return
	}
	for _, ch := range n.Channels {
		if err := ch.Deliver(ctx.Context(), a); err != nil {
			// Failing makes goka stop without committing this alert, so it is delivered again after restart.
			ctx.Fail(fmt.Errorf("deliver alert %s via %s: %w", a.ID, ch.Name(), err))
		}
		n.Metrics.Deliveries.WithLabelValues(ch.Name()).Inc()
	}
	n.Metrics.Alerts.WithLabelValues(string(a.Action)).Inc()
	if len(delivered) >= recentAlerts {
		delivered = delivered[len(delivered)-recentAlerts+1:]
	}
	ctx.SetValue(append(delivered, a.ID))
}

// Metrics are the notifier's Prometheus metrics.
type Metrics struct {
	Alerts     *prometheus.CounterVec // by action
	Deliveries *prometheus.CounterVec // by channel
	Duplicates prometheus.Counter
	Malformed  prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_notifier_alerts_total", Help: "Alerts handled by the notifier, by action.",
		}, []string{"action"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraudpipe_notifier_deliveries_total", Help: "Deliveries, by channel.",
		}, []string{"channel"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraudpipe_notifier_duplicates_total", Help: "Alerts already delivered (redelivered or re-emitted) and dropped.",
		}),
		Malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraudpipe_notifier_malformed_total", Help: "Records on the alerts topic that are not alerts.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Alerts, m.Deliveries, m.Duplicates, m.Malformed)
	}
	return m
}
