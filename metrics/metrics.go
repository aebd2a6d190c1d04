// Package metrics serves Prometheus metrics and pprof on a listener of their own, never on
// http.DefaultServeMux, and exports goka's consumer lag.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Listener is the metrics port, bound by Listen before a command starts its parts, so that a taken port fails the
// command at once, and so that no port a part binds itself (an embedded Redis on port 0, say) can be handed the
// metrics port in between. The zero Listener (an empty address: metrics off) serves nothing.
type Listener struct{ ln net.Listener }

// Listen binds addr; an empty addr binds nothing.
func Listen(addr string) (Listener, error) {
	if addr == "" {
		return Listener{}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return Listener{}, fmt.Errorf("metrics listener: %w", err)
	}
	return Listener{ln}, nil
}

// Close releases the port if Serve never ran; Serve closes it itself when it stops.
func (l Listener) Close() {
	if l.ln != nil {
		l.ln.Close()
	}
}

// Serve serves /metrics, /healthz, /readyz and /debug/pprof/ on l until ctx is done; the health endpoints report
// h's parts (nil: always ok). The zero Listener serves nothing but still returns only when ctx is done, so callers
// can treat its return as shutdown.
func Serve(ctx context.Context, l Listener, reg *prometheus.Registry, h *Health, log *slog.Logger) error {
	ln := l.ln
	if ln == nil {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", h.handler(false))
	mux.HandleFunc("/readyz", h.handler(true))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// lagCollector reports, per input topic and partition this instance owns, how many records it is behind, and
// per output topic what it wrote since it started.
//
// Between a processor's runs (a restart) there is no processor to ask: the collector reports what it last saw, so
// that a restarting processor's lag stays on the dashboard instead of vanishing as if there were none.
type lagCollector struct {
	processor  func() *goka.Processor
	mu         sync.Mutex
	last       []prometheus.Metric
	desc       *prometheus.Desc
	outRecords *prometheus.Desc
	outBytes   *prometheus.Desc
}

// RegisterLag exports fraudpipe_consumer_lag and fraudpipe_output_{records,bytes} for the processor that current
// returns (nil between restarts).
func RegisterLag(reg prometheus.Registerer, group string, current func() *goka.Processor) {
	labels := prometheus.Labels{"group": group}
	reg.MustRegister(&lagCollector{processor: current,
		desc: prometheus.NewDesc("fraudpipe_consumer_lag", "Records in the input topic partition not yet processed by this instance.",
			[]string{"topic", "partition"}, labels),
		outRecords: prometheus.NewDesc("fraudpipe_output_records", "Records this instance emitted to a topic since it started (group tables included).",
			[]string{"topic"}, labels),
		outBytes: prometheus.NewDesc("fraudpipe_output_bytes", "Value bytes this instance emitted to a topic since it started (group tables included).",
			[]string{"topic"}, labels),
	})
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.outRecords
	ch <- c.outBytes
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.processor()
	if p == nil {
		for _, m := range c.last {
			ch <- m
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats := p.StatsWithContext(ctx)
	var out []prometheus.Metric
	records, bytes := map[string]float64{}, map[string]float64{}
	for part, ps := range stats.Group {
		for topic, in := range ps.Input {
			out = append(out, prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(max(in.OffsetLag, 0)),
				topic, strconv.Itoa(int(part))))
		}
		for topic, o := range ps.Output {
			records[topic] += float64(o.Count)
			bytes[topic] += float64(o.Bytes)
		}
	}
	for topic := range records {
		out = append(out, prometheus.MustNewConstMetric(c.outRecords, prometheus.GaugeValue, records[topic], topic),
			prometheus.MustNewConstMetric(c.outBytes, prometheus.GaugeValue, bytes[topic], topic))
	}
	// A processor still recovering after a restart has no partitions to report yet: keep the last view. One that
	// runs with none (more instances than partitions) reports none.
	if len(stats.Group) > 0 || p.Recovered() {
		c.last = out
	}
	for _, m := range c.last {
		ch <- m
	}
}

// Counter declares a counter in one line: its name and what it counts.
func Counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// CounterVec declares a counter with labels in one line.
func CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}
