package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
)

// Metrics are the API's.
type Metrics struct {
	Requests  *prometheus.CounterVec   // by outcome
	Fallbacks prometheus.Counter       // answers given by the fallback
	Latency   *prometheus.HistogramVec // request to answer, by decision and fallback
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
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Fallbacks, m.Latency)
	}
	return m
}
