package detector

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/rules"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	Processed   prometheus.Counter
	Rejected    *prometheus.CounterVec // by reason
	Duplicates  prometheus.Counter
	Redelivered prometheus.Counter
	Rerouted    prometheus.Counter
	Alerts      *prometheus.CounterVec // by action
	RuleFired   *prometheus.CounterVec // by rule and action of the alert
	Latency     prometheus.Histogram   // event time to detection
	// Processing is the pipeline's own latency: from the payment reaching Kafka to its alert handed to the producer.
	Processing  prometheus.Histogram
	Unconverted *prometheus.CounterVec // by rule
	Expired     prometheus.Counter
	Switches    prometheus.Counter
	Shadow      *prometheus.CounterVec // shadow rules that fired, by rule
	Cooled      *prometheus.CounterVec // rules that fired within their cooldown, by rule
	Allowed     *prometheus.CounterVec // alerts an allow list suppressed, by list
	ExprErrors  *prometheus.CounterVec // expression evaluations that failed, by rule
	// LateAlerts counts alerts raised after the fact, by action; BeyondLateness the payments that arrived
	// later than the rules' lateness and re-scored nothing.
	LateAlerts     *prometheus.CounterVec
	BeyondLateness prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Processed:   metrics.Counter("fraudpipe_payments_processed_total", "Payments scored (duplicates excluded)."),
		Rejected:    metrics.CounterVec("fraudpipe_payments_rejected_total", "Malformed payments sent to payments.dlq, by reason.", "reason"),
		Duplicates:  metrics.Counter("fraudpipe_payments_duplicate_total", "Payments whose id the account had already seen (producer retries): not counted again."),
		Redelivered: metrics.Counter("fraudpipe_payments_redelivered_total", "Records processed again after a crash or rebalance; their alert is re-emitted with the same id."),
		Rerouted:    metrics.Counter("fraudpipe_payments_rerouted_total", "Payments that arrived on another partition or key than the pipeline's partitioner gives their account and went through the loop topic."),
		Alerts:      metrics.CounterVec("fraudpipe_alerts_total", "Alerts emitted, by action.", "action"),
		RuleFired:   metrics.CounterVec("fraudpipe_alert_rules_total", "Rules that fired in emitted alerts, by rule and action.", "rule", "action"),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraudpipe_alert_latency_seconds",
			Help:    "From the payment's own timestamp (event time) to the alert's detection: includes how late the payment was produced, so replayed or delayed payments show hours; fraudpipe_processing_latency_seconds is the pipeline's own latency.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		Processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraudpipe_processing_latency_seconds",
			Help:    "From the payment's record reaching Kafka (its record timestamp; for a re-routed payment, its first record's) to its alert handed to the producer: the pipeline's own latency, whatever the payment's event time.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		Unconverted:    metrics.CounterVec("fraudpipe_unconverted_amounts_total", "Evaluations of a money rule that left out a payment whose currency has no rate in the rules file.", "rule"),
		Expired:        metrics.Counter("fraudpipe_state_expired_total", "Idle accounts whose state was deleted."),
		Switches:       metrics.Counter("fraudpipe_ruleset_switches_total", "Ruleset switch markers processed (one per payments partition and version)."),
		Shadow:         metrics.CounterVec("fraudpipe_shadow_rule_fired_total", "Shadow-mode rules that fired (never scored), by rule.", "rule"),
		Cooled:         metrics.CounterVec("fraudpipe_rule_cooled_down_total", "Rules that fired but stayed quiet within their cooldown, by rule.", "rule"),
		Allowed:        metrics.CounterVec("fraudpipe_alerts_allowed_total", "Alerts suppressed by an allow list, by list.", "list"),
		ExprErrors:     metrics.CounterVec("fraudpipe_expression_errors_total", "Expression rule evaluations that failed (and did not fire), by rule.", "rule"),
		LateAlerts:     metrics.CounterVec("fraudpipe_late_alerts_total", "Alerts raised after the fact: a payment that arrived after later-stamped ones re-scored them, by action.", "action"),
		BeyondLateness: metrics.Counter("fraudpipe_payments_beyond_lateness_total", "Payments that arrived later than state.lateness behind their account's newest: scored over what state still held, they re-scored nothing."),
	}
	if reg != nil {
		reg.MustRegister(m.Processed, m.Rejected, m.Duplicates, m.Redelivered, m.Rerouted, m.Alerts, m.RuleFired,
			m.Latency, m.Processing, m.Unconverted, m.Expired, m.Switches, m.Shadow, m.Cooled, m.Allowed, m.ExprErrors, m.LateAlerts,
			m.BeyondLateness)
	}
	return m
}

// observe counts what a decision did besides alerting.
func (m *Metrics) observe(d rules.Decision) {
	for _, name := range d.Unconverted {
		m.Unconverted.WithLabelValues(name).Inc()
	}
	for _, f := range d.Shadow {
		m.Shadow.WithLabelValues(f.Name).Inc()
	}
	for _, name := range d.Cooled {
		m.Cooled.WithLabelValues(name).Inc()
	}
	for _, name := range d.Errors {
		m.ExprErrors.WithLabelValues(name).Inc()
	}
	if d.Allowed != "" {
		list, _, _ := strings.Cut(d.Allowed, ":")
		m.Allowed.WithLabelValues(list).Inc()
	}
}

func (m *Metrics) observeAlert(d rules.Decision, latency time.Duration) {
	m.Alerts.WithLabelValues(string(d.Action)).Inc()
	for _, f := range d.Fired {
		m.RuleFired.WithLabelValues(f.Name, string(d.Action)).Inc()
	}
	m.Latency.Observe(latency.Seconds())
}
