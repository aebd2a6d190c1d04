// Package bench measures the pipeline end to end on one machine: the raw broker's produce-plus-consume rate as a
// baseline, the detector's throughput at saturation, payment-to-alert latency at fixed offered rates, and the
// detector's CPU, memory and state sizes. The detector runs as a child process so its resources are its own.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/producer"
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

	alerts, err := newAlertWatcher(cfg.Kafka)
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

// sendTimes maps a phase's payment ids to when they were handed to the producer.
type sendTimes struct {
	prefix   string
	at       []int64 // unix ns, by sequence number
	accounts int     // distinct accounts that paid
}

// load is one phase's stream of generated payments and when each was sent.
type load struct {
	g  *producer.Generator
	st *sendTimes
}

// newLoad prepares n payments whose ids start with prefix, and has the watcher time their alerts.
func newLoad(cfg Config, prefix string, n int, w *alertWatcher) *load {
	g := producer.NewGenerator(uint64(len(prefix)*7919+n), cfg.Accounts, 0.01, time.Now().Add(-time.Duration(n)*producer.Step(cfg.Accounts, time.Hour)), time.Hour)
	g.IDPrefix = prefix
	// A fraud pattern's later payments get their ids when the pattern starts and are sent later, so ids run
	// ahead of the send count by at most the payments still scheduled.
	st := &sendTimes{prefix: prefix, at: make([]int64, n+n/10+100)}
	w.expect(st)
	return &load{g: g, st: st}
}

// send sends the load's next n payments, at rate per second (0: as fast as possible).
func (l *load) send(ctx context.Context, cfg Config, n, rate int) error {
	s, err := producer.NewSender(cfg.Kafka.Brokers, cfg.Kafka.SaramaConfig("fraudpipe-bench"))
	if err != nil {
		return err
	}
	prefix, st := l.st.prefix, l.st
	began := time.Now()
	for i := range n {
		if rate > 0 {
			if ahead := time.Until(began.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		p := l.g.Next()
		if seq, err := strconv.Atoi(p.ID[len(prefix)+len("pay_"):]); err == nil && seq < len(st.at) {
			st.at[seq] = time.Now().UnixNano()
		}
		if err := s.Send(ctx, string(topics.Payments), p.AccountID, producer.Encode(p)); err != nil {
			s.Close()
			return err
		}
	}
	st.accounts = l.g.Distinct()
	return s.Close()
}

// produce sends n generated payments, at rate per second (0: as fast as possible).
func produce(ctx context.Context, cfg Config, prefix string, n, rate int, w *alertWatcher) (*sendTimes, error) {
	l := newLoad(cfg, prefix, n, w)
	if err := l.send(ctx, cfg, n, rate); err != nil {
		return nil, err
	}
	return l.st, nil
}

// median of a non-empty slice, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// raw produces cfg.Count payments to topic, which nobody processes, then consumes them all: the broker's own cost
// for the records the pipeline moves, on the same machine at the same time.
func raw(ctx context.Context, cfg Config, topic string) (float64, error) {
	s, err := producer.NewSender(cfg.Kafka.Brokers, cfg.Kafka.SaramaConfig("fraudpipe-bench-raw"))
	if err != nil {
		return 0, err
	}
	g := producer.NewGenerator(99, cfg.Accounts, 0.01, time.Now(), time.Hour)
	start := time.Now()
	for range cfg.Count {
		p := g.Next()
		if err := s.Send(ctx, topic, p.AccountID, producer.Encode(p)); err != nil {
			return 0, err
		}
	}
	if err := s.Close(); err != nil {
		return 0, err
	}
	c, err := sarama.NewConsumer(cfg.Kafka.Brokers, cfg.Kafka.SaramaConfig("fraudpipe-bench-raw"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		hwm := pc.HighWaterMarkOffset()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for m := range pc.Messages() {
				mu.Lock()
				got++
				mu.Unlock()
				if m.Offset+1 >= hwm {
					return
				}
			}
		}()
		if hwm == 0 {
			pc.Close()
		}
	}
	wg.Wait()
	if got < cfg.Count {
		return 0, fmt.Errorf("consumed %d of %d", got, cfg.Count)
	}
	return float64(cfg.Count) / time.Since(start).Seconds(), nil
}

// alertWatcher consumes the alerts topic and records, per alert, the time from its payment's send to arrival.
type alertWatcher struct {
	consumer sarama.Consumer
	mu       sync.Mutex
	phases   map[string]*sendTimes
	lat      map[*sendTimes][]float64
}

func newAlertWatcher(k kafka.Config) (*alertWatcher, error) {
	c, err := sarama.NewConsumer(k.Brokers, k.SaramaConfig("fraudpipe-bench-alerts"))
	if err != nil {
		return nil, err
	}
	w := &alertWatcher{consumer: c, phases: map[string]*sendTimes{}, lat: map[*sendTimes][]float64{}}
	parts, err := c.Partitions(string(topics.Alerts))
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		pc, err := c.ConsumePartition(string(topics.Alerts), p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		go func() {
			for m := range pc.Messages() {
				w.observe(m.Value, time.Now().UnixNano())
			}
		}()
	}
	return w, nil
}

func (w *alertWatcher) expect(st *sendTimes) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phases[st.prefix] = st
}

func (w *alertWatcher) observe(value []byte, now int64) {
	var a struct {
		PaymentID string `json:"payment_id"`
	}
	if json.Unmarshal(value, &a) != nil {
		return
	}
	prefix, seqStr, ok := strings.Cut(a.PaymentID, "pay_")
	seq, err := strconv.Atoi(seqStr)
	if !ok || err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.phases[prefix]
	if st == nil || seq >= len(st.at) || st.at[seq] == 0 {
		return
	}
	w.lat[st] = append(w.lat[st], float64(now-st.at[seq])/1e6)
}

func (w *alertWatcher) latencies(st *sendTimes) Latency {
	w.mu.Lock()
	l := slices.Clone(w.lat[st])
	w.mu.Unlock()
	if len(l) == 0 {
		return Latency{}
	}
	slices.Sort(l)
	q := func(p float64) float64 { return l[min(len(l)-1, int(p*float64(len(l))))] }
	return Latency{Alerts: len(l), P50ms: q(0.50), P95ms: q(0.95), P99ms: q(0.99), MaxMs: l[len(l)-1]}
}

func (w *alertWatcher) close() { w.consumer.Close() }

// child is a detector process.
type child struct {
	cmd     *exec.Cmd
	metrics string
	done    chan struct{} // closed when the process has exited
}

// startDetector starts detector i and waits until it has partitions. Its metrics port is picked here, free when
// picked, and bound by the child a moment later; a detector binds it before anything else and exits if it is taken
// (another process may take a released port in between), so a detector that exits before it is ready is started
// again on another port, twice at most.
func startDetector(ctx context.Context, cfg Config, i int) (*child, error) {
	for attempt := 1; ; attempt++ {
		c, err := launchDetector(ctx, cfg, i)
		if err != nil {
			return nil, err
		}
		// Ready when its metrics answer and its consumer group has partitions (lag is reported per partition).
		err = waitUntil(ctx, time.Minute, func() bool {
			return c.exited() || c.metric("fraudpipe_consumer_lag") >= 0 && c.has("fraudpipe_consumer_lag{")
		})
		if !c.exited() {
			return c, err
		}
		if attempt == 3 {
			return nil, fmt.Errorf("detector %d exited at start-up %d times (its output is above)", i, attempt)
		}
	}
}

func launchDetector(ctx context.Context, cfg Config, i int) (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &child{metrics: addr, done: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, cfg.Binary, "detector", "--brokers", strings.Join(cfg.Kafka.Brokers, ","),
		"--rules", cfg.Rules, "--state-dir", filepath.Join(cfg.WorkDir, fmt.Sprint("detector-", i)),
		"--metrics-addr", addr, "--partitions", strconv.Itoa(cfg.Kafka.Partitions), "--log-level", "warn",
		"--flush-interval", cfg.Kafka.Flush.String(), "--compression", cfg.Kafka.Compression)
	if cfg.CountOnly {
		c.cmd.Args = append(c.cmd.Args, "--count-only")
	}
	c.cmd.Stdout, c.cmd.Stderr = os.Stderr, os.Stderr
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start detector: %w", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) stop() {
	c.cmd.Process.Signal(os.Interrupt)
	<-c.done
}

func (c *child) scrape() string {
	resp, err := http.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// profileSelf writes a CPU profile of this process over d.
func profileSelf(ctx context.Context, d time.Duration, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	pprof.StopCPUProfile()
	return f.Close()
}

func (c *child) profile(ctx context.Context, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.metrics, max(1, int(d.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *child) has(prefix string) bool { return strings.Contains(c.scrape(), prefix) }

// metric sums the samples whose name (with labels, if given) starts with name; -1 if unreachable.
func (c *child) metric(name string) float64 {
	body := c.scrape()
	if body == "" {
		return -1
	}
	v, err := metrics.SumSamples(body, name)
	if err != nil {
		return -1
	}
	return v
}

// sum adds a metric over the children.
func sum(cs []*child, name string) float64 {
	s := 0.0
	for _, c := range cs {
		s += c.metric(name)
	}
	return s
}

// cpuSeconds is the user plus system time the children used so far (Linux /proc).
func cpuSeconds(cs []*child) float64 {
	total := 0.0
	for _, c := range cs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		total += (utime + stime) / 100 // USER_HZ
	}
	return total
}

// peakRSSMiB is the child's high-water resident set (VmHWM).
func (c *child) peakRSSMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
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

// Print writes the result as a table.
func Print(w io.Writer, r *Result) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "payments %d over %d accounts (%d of them paid, so hold state), partitions %d, detectors %d, alerts %.2f%%\n",
		r.Count, r.Accounts, r.AccountsPaid, r.Partitions, r.Detectors, r.AlertShare*100)
	if r.CountOnly {
		fmt.Fprintf(w, "detectors counting only (--count-only): no payment decoded or scored\n")
	}
	fmt.Fprintf(w, "\n%-44s %12s\n", "measure", "value")
	row := func(name, format string, v ...any) { fmt.Fprintf(w, "%-44s %12s\n", name, fmt.Sprintf(format, v...)) }
	row("raw broker produce+consume (records/s)", "%.0f", r.RawPerSec)
	row("  before the pipeline, after it", "%s", fmt.Sprintf("%.0f, %.0f", r.RawBeforePerSec, r.RawAfterPerSec))
	row("pipeline end to end (payments/s)", "%.0f", r.PipelinePerSec)
	row("pipeline / raw (median of the rounds)", "%.2f", r.Ratio)
	for i, p := range r.Rounds {
		row(fmt.Sprintf("  round %d: payments/s, raw beside it", i+1), "%s", fmt.Sprintf("%.0f / %.0f = %.2f", p.PipelinePerSec, p.RawPerSec, p.Ratio))
	}
	if len(r.Rounds) > 1 {
		row("  idle detectors' CPU s during those baselines", "%.2f", r.RawDetectorCPU)
	}
	row("detector CPU seconds per million payments", "%.1f", r.CPUSecPerMillion)
	row("detector heap allocations per payment", "%.1f", r.AllocsPerPayment)
	row("  their bytes", "%.0f", r.AllocBytesPerPayment)
	row("detector peak RSS (MiB)", "%.0f", r.PeakRSSMiB)
	row("state bytes per account (mean table write)", "%.0f", r.StateBytesAccount)
	row("changelog bytes per payment", "%.0f", r.ChangelogBytesPay)
	fmt.Fprintf(w, "\n%-24s %8s %9s %9s %9s %9s\n", "payment-to-alert latency", "alerts", "p50 ms", "p95 ms", "p99 ms", "max ms")
	lat := func(name string, l Latency) {
		fmt.Fprintf(w, "%-24s %8d %9.1f %9.1f %9.1f %9.1f\n", name, l.Alerts, l.P50ms, l.P95ms, l.P99ms, l.MaxMs)
	}
	lat("at saturation", r.SaturationLatency)
	keys := make([]int, 0, len(r.RateLatency))
	for k := range r.RateLatency {
		n, _ := strconv.Atoi(k)
		keys = append(keys, n)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lat(fmt.Sprintf("at %d/s", k), r.RateLatency[strconv.Itoa(k)])
	}
}
