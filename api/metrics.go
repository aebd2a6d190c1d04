package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Metrics are the API's.
type Metrics struct {
	Requests  *prometheus.CounterVec   // by outcome
	Fallbacks prometheus.Counter       // answers given by the fallback
	Latency   *prometheus.HistogramVec // request to answer, by decision and fallback
	Relayed   *prometheus.CounterVec   // decisions relayed, by path

	// Resolved once: looking a child up by its labels costs about as much as the rest of the answer.
	answered prometheus.Counter
	latency  map[topics.Outcome][2]prometheus.Observer // [fallback]
}

// answer counts an answer and its latency.
func (m *Metrics) answer(outcome topics.Outcome, fallback bool, took time.Duration) {
	m.answered.Inc()
	i := 0
	if fallback {
		i = 1
	}
	m.latency[outcome][i].Observe(took.Seconds())
}

// NewMetrics registers the API's metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: metrics.CounterVec("fraudpipe_api_requests_total",
			"Decision API requests by outcome: answered, repeated (a payment asked for again), invalid, unauthenticated, rate_limited, unavailable.", "outcome"),
		Fallbacks: metrics.Counter("fraudpipe_api_fallbacks_total", "Payments answered with the configured fallback because their decision missed the deadline."),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fraudpipe_api_decision_seconds",
			Help:    "From a POST /v1/payments to its answer, by decision and whether it was the fallback.",
			Buckets: []float64{.001, .0025, .005, .01, .015, .02, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"decision", "fallback"}),
		Relayed: metrics.CounterVec("fraudpipe_api_relayed_total",
			"Decisions of API payments this instance's relay passed on: local (to a request of this instance) or published (through Redis, to another instance).", "path"),
	}
	m.answered = m.Requests.WithLabelValues("answered")
	m.latency = map[topics.Outcome][2]prometheus.Observer{}
	for _, o := range []topics.Outcome{topics.OutcomeApprove, topics.OutcomeReview, topics.OutcomeBlock} {
		m.latency[o] = [2]prometheus.Observer{m.Latency.WithLabelValues(string(o), "false"), m.Latency.WithLabelValues(string(o), "true")}
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Fallbacks, m.Latency, m.Relayed)
	}
	return m
}
