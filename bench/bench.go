// Package bench measures the pipeline end to end on one machine: the raw broker's produce-plus-consume rate as a
// baseline, the detector's throughput at saturation, payment-to-alert latency at fixed offered rates, and the
// detector's CPU, memory and state sizes. The detector runs as a child process so its resources are its own.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Config is what to measure.
type Config struct {
	Kafka      kafka.Config
	Binary     string        // the fraudpipe executable, for the detector child
	Rules      string        // rules file (the shipped one)
	Count      int           // payments at saturation, over all rounds
	Rounds     int           // the saturation run in this many parts, each between two raw baselines
	Accounts   int           // distinct accounts
	Rates      []int         // offered rates for the latency runs
	RateFor    time.Duration // how long each latency run offers its rate
	Detectors  int           // detector instances (one consumer group)
	WorkDir    string
	ResultPath string
	// ProfileDir, when set, receives a CPU profile of each detector over the first ProfileFor of saturation
	// (detector-N.cpu.pprof), and one of this process (bench.cpu.pprof: the embedded broker, the producer and
	// the alert consumer, which share the machine with the detectors), to see where the time goes before
	// optimising.
	ProfileDir string
	ProfileFor time.Duration
	// CountOnly runs the detectors with --count-only: each payment reads its account's state and writes it back,
	// nothing is decoded or scored, so the run shows what goka, the Kafka clients and the store take by
	// themselves. There are no alerts, so no latency runs.
	CountOnly bool
}

// Latency summarises payment-to-alert latencies.
type Latency struct {
	Alerts int     `json:"alerts"`
	P50ms  float64 `json:"p50_ms"`
	P95ms  float64 `json:"p95_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Result is what a run measured.
type Result struct {
	Machine      string    `json:"machine"`
	Started      time.Time `json:"started"`
	Count        int       `json:"payments"`
	Accounts     int       `json:"accounts"`
	AccountsPaid int       `json:"accounts_paid_at_saturation"`
	Detectors    int       `json:"detectors"`
	CountOnly    bool      `json:"count_only,omitempty"`
	Partitions   int       `json:"partitions"`
	// Rounds holds each part of the saturation run against the faster of the raw baselines on either side of
	// it: a shared machine that slows down during one of them would otherwise flatter that round's ratio. The
	// median of their ratios holds when the machine slows down for a minute, which one long run's ratio did not
	// (0.27-0.43 within a day).
	Rounds []Round `json:"rounds"`
	// RawPerSec is the fastest raw baseline; RawBeforePerSec the first (before the pipeline ran) and
	// RawAfterPerSec the last (after its detectors stopped).
	RawPerSec       float64 `json:"raw_produce_consume_per_sec"`
	RawBeforePerSec float64 `json:"raw_before_per_sec"`
	RawAfterPerSec  float64 `json:"raw_after_per_sec"`
	// RawRuns are all the baselines in the order they ran: before the first round, between rounds, after.
	RawRuns []float64 `json:"raw_runs_per_sec"`
	// RawDetectorCPU is the CPU seconds the idle detectors took during the baselines between rounds (a flush,
	// a journal snapshot), which the baselines did not get.
	RawDetectorCPU float64 `json:"detector_cpu_seconds_during_baselines"`
	// PipelinePerSec is all saturation payments over the time the rounds took; Ratio is the median of the
	// rounds' ratios.
	PipelinePerSec   float64 `json:"pipeline_payments_per_sec"`
	Ratio            float64 `json:"pipeline_to_raw"`
	AlertShare       float64 `json:"alert_share"`
	CPUSecPerMillion float64 `json:"detector_cpu_seconds_per_million"`
	// AllocsPerPayment and AllocBytesPerPayment are the detectors' heap allocations (Go's, from their metrics)
	// during the rounds over the payments scored: unlike CPU time they hardly move with the machine's speed, so
	// they compare builds on a noisy machine.
	AllocsPerPayment     float64            `json:"detector_allocs_per_payment"`
	AllocBytesPerPayment float64            `json:"detector_alloc_bytes_per_payment"`
	PeakRSSMiB           float64            `json:"detector_peak_rss_mib"`
	StateBytesAccount    float64            `json:"state_bytes_per_account_write"`
	ChangelogBytesPay    float64            `json:"changelog_bytes_per_payment"`
	SaturationLatency    Latency            `json:"saturation_latency"`
	RateLatency          map[string]Latency `json:"latency_at_rate"`
}

// Round is one part of the saturation run.
type Round struct {
	Payments       int     `json:"payments"`
	PipelinePerSec float64 `json:"pipeline_payments_per_sec"`
	RawPerSec      float64 `json:"raw_per_sec"` // the faster of the raw baselines before and after the round
	Ratio          float64 `json:"pipeline_to_raw"`
}

// Run measures and writes the result as JSON to cfg.ResultPath.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Result, error) {
	res := &Result{Machine: machine(), Started: time.Now().UTC(), Count: cfg.Count, Accounts: cfg.Accounts,
		Detectors: cfg.Detectors, Partitions: cfg.Kafka.Partitions, CountOnly: cfg.CountOnly, RateLatency: map[string]Latency{}}
	if cfg.CountOnly {
		cfg.Rates = nil // nothing alerts
	}
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	rounds := max(cfg.Rounds, 1)
	rawSpecs := make([]topics.Spec, rounds+1) // before each round, and after the detectors stopped
	for i := range rawSpecs {
		rawSpecs[i] = topics.Spec{Name: fmt.Sprint("bench-raw-", i), Retention: time.Hour}
	}
	// The pipeline's placement, recorded before its topics exist, as a part of the pipeline does; the load writes
	// by it, so no payment takes the detector's loop hop.
	p, err := cfg.Kafka.AgreePartitioner(ctx, cfg.Kafka.Partitioner, "detector-table", log)
	if err != nil {
		return nil, err
	}
	cfg.Kafka.Partitioner = p
	if err := cfg.Kafka.EnsureTopics(ctx, append(pipelineSpecs(), rawSpecs...)); err != nil {
		return nil, err
	}
	raws := make([]float64, 0, rounds+1)
	var dets []*child
	baseline := func(when string) error {
		log.Info("raw broker baseline: producing and consuming", "records", cfg.Count, "when", when)
		cpu0 := cpuSeconds(dets) // the baselines between rounds run beside idle detectors: what they took is kept
		r, err := raw(ctx, cfg, rawSpecs[len(raws)].Name)
		if err != nil {
			return fmt.Errorf("raw baseline %s: %w", when, err)
		}
		raws = append(raws, r)
		res.RawDetectorCPU += cpuSeconds(dets) - cpu0
		return nil
	}
	if err := baseline("before the pipeline"); err != nil {
		return nil, err
	}

	alerts, err := newAlertWatcher(ctx, cfg.Kafka)
	if err != nil {
		return nil, err
	}
	defer alerts.close()
	for i := range cfg.Detectors {
		d, err := startDetector(ctx, cfg, i)
		if err != nil {
			return nil, err
		}
		defer d.stop()
		dets = append(dets, d)
	}
	processed := func() float64 { return sum(dets, "fraudpipe_payments_processed_total") }

	// One stream of payments, sent a round at a time: the same payments as one long run.
	sat := newLoad(cfg, "sat_", cfg.Count, alerts)
	var busy time.Duration
	var cpu, allocs, allocBytes float64
	parts := make([]Round, rounds)
	for i := range rounds {
		n := cfg.Count / rounds
		if i == rounds-1 {
			n = cfg.Count - n*(rounds-1)
		}
		if i > 0 {
			if err := baseline(fmt.Sprint("between rounds ", i, " and ", i+1)); err != nil {
				return nil, err
			}
		}
		log.Info("saturation: producing as fast as possible while the detector runs", "round", i+1, "of", rounds, "payments", n)
		before, cpu0, start := processed(), cpuSeconds(dets), time.Now()
		allocs0, bytes0 := sum(dets, "go_memstats_mallocs_total"), sum(dets, "go_memstats_alloc_bytes_total")
		profiled := func() error { return nil }
		if i == 0 {
			profiled = profile(ctx, cfg, dets, log)
		}
		if err := sat.send(ctx, cfg, n, 0); err != nil {
			return nil, err
		}
		if err := waitUntil(ctx, 10*time.Minute, func() bool { return processed() >= before+float64(n) }); err != nil {
			return nil, fmt.Errorf("waiting for %d payments (processed %v): %w", n, processed()-before, err)
		}
		elapsed := time.Since(start)
		busy += elapsed
		cpu += cpuSeconds(dets) - cpu0
		allocs += sum(dets, "go_memstats_mallocs_total") - allocs0
		allocBytes += sum(dets, "go_memstats_alloc_bytes_total") - bytes0
		parts[i] = Round{Payments: n, PipelinePerSec: float64(n) / elapsed.Seconds()}
		if err := profiled(); err != nil {
			return nil, err
		}
	}
	res.AccountsPaid = sat.st.accounts
	res.PipelinePerSec = float64(cfg.Count) / busy.Seconds()
	res.CPUSecPerMillion = cpu / float64(cfg.Count) * 1e6
	res.AllocsPerPayment, res.AllocBytesPerPayment = allocs/float64(cfg.Count), allocBytes/float64(cfg.Count)
	var alertCount, tableBytes, tableRecords float64
	for _, d := range dets {
		alertCount += d.metric("fraudpipe_alerts_total")
		tableBytes += d.metric(`fraudpipe_output_bytes{group="detector",topic="detector-table"}`)
		tableRecords += d.metric(`fraudpipe_output_records{group="detector",topic="detector-table"}`)
		res.PeakRSSMiB = max(res.PeakRSSMiB, d.peakRSSMiB())
	}
	res.AlertShare = alertCount / float64(cfg.Count)
	if tableRecords > 0 {
		res.StateBytesAccount = tableBytes / tableRecords
		res.ChangelogBytesPay = tableBytes / float64(cfg.Count)
	}
	time.Sleep(time.Second) // the last alerts of the run are still on their way to the watcher
	res.SaturationLatency = alerts.latencies(sat.st)

	settleDisk()
	for _, rate := range cfg.Rates {
		n := int(float64(rate) * cfg.RateFor.Seconds())
		log.Info("latency at a fixed offered rate", "rate", rate, "payments", n)
		before := processed()
		sent, err := produce(ctx, cfg, fmt.Sprintf("r%d_", rate), n, rate, alerts)
		if err != nil {
			return nil, err
		}
		if err := waitUntil(ctx, 5*time.Minute, func() bool { return processed() >= before+float64(n) }); err != nil {
			return nil, err
		}
		time.Sleep(time.Second)
		res.RateLatency[strconv.Itoa(rate)] = alerts.latencies(sent)
	}

	// The baseline again, with the detectors gone so that they take nothing from it.
	for _, d := range dets {
		d.stop()
	}
	dets = nil
	if err := baseline("after the pipeline"); err != nil {
		return nil, err
	}
	res.RawRuns = raws
	res.RawBeforePerSec, res.RawAfterPerSec, res.RawPerSec = raws[0], raws[len(raws)-1], slices.Max(raws)
	ratios := make([]float64, rounds)
	for i := range parts {
		parts[i].RawPerSec = max(raws[i], raws[i+1])
		parts[i].Ratio = parts[i].PipelinePerSec / parts[i].RawPerSec
		ratios[i] = parts[i].Ratio
	}
	res.Rounds, res.Ratio = parts, median(ratios)
	if cfg.ResultPath != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.ResultPath, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("write results: %w", err)
		}
	}
	return res, nil
}

// profile starts fetching a CPU profile of each detector (from its pprof endpoint) and returns a function that
// waits for them to be written.
func profile(ctx context.Context, cfg Config, dets []*child, log *slog.Logger) func() error {
	if cfg.ProfileDir == "" {
		return func() error { return nil }
	}
	if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
		return func() error { return fmt.Errorf("profile: %w", err) }
	}
	errs := make(chan error, len(dets)+1)
	go func() {
		path := filepath.Join(cfg.ProfileDir, "bench.cpu.pprof")
		err := profileSelf(ctx, cfg.ProfileFor, path)
		if err == nil {
			log.Info("bench process CPU profile written", "path", path, "seconds", cfg.ProfileFor.Seconds())
		}
		errs <- err
	}()
	for i, d := range dets {
		go func() {
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("detector-%d.cpu.pprof", i))
			err := d.profile(ctx, cfg.ProfileFor, path)
			if err == nil {
				log.Info("detector CPU profile written", "path", path, "seconds", cfg.ProfileFor.Seconds())
			}
			errs <- err
		}()
	}
	return func() error {
		var first error
		for range len(dets) + 1 {
			if err := <-errs; err != nil && first == nil {
				first = fmt.Errorf("profile: %w", err)
			}
		}
		return first
	}
}

func pipelineSpecs() []topics.Spec {
	return topics.Specs([]string{"detector-table"}, []string{"detector-loop"})
}

// machine names the machine the figures come from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
		}
	}
	return fmt.Sprintf("%d × %s%s", numCPU(), cpu, mem)
}
