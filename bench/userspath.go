package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The users' path: `fraudpipe run` (broker, detector and notifier in one process, sharing the machine) fed by a
// standard Kafka client, the way users try it, rather than one detector fed by our own producer.

// Clients the users' path is fed by.
const (
	ClientKcat = "kcat" // librdkafka; places keys by CRC32
	ClientJava = "java" // Apache Kafka's console producer and consumer; murmur2
)

// ClientPartitioner is where each client places a key by default.
var ClientPartitioner = map[string]kafka.Partitioner{ClientKcat: kafka.CRC32, ClientJava: kafka.Murmur2}

// UsersPathCase is one client feeding a pipeline created with one partitioner.
type UsersPathCase struct {
	Client      string            `json:"client"`
	Partitioner kafka.Partitioner `json:"pipeline_partitioner"`
}

// UsersPathConfig is what to measure on the users' path.
type UsersPathConfig struct {
	Binary     string // the fraudpipe executable, run as `fraudpipe run`
	Rules      string
	WorkDir    string
	Count      int // payments at saturation, per case
	Accounts   int
	Partitions int
	Rate       int // offered rate of the latency run (kcat cases only)
	RateFor    time.Duration
	Cases      []UsersPathCase
	// KafkaScript runs the Java client (e2e/kafka/kafka.sh: produce BROKERS TOPIC, consume BROKERS TOPIC N).
	KafkaScript string
	ResultPath  string
}

// UsersPathRow is one case's figures.
type UsersPathRow struct {
	UsersPathCase
	Matching bool `json:"matching"` // the pipeline places keys as the client does
	Payments int  `json:"payments"`
	// RawPerSec is the same client producing the same payments into a topic nobody processes and consuming them
	// back, on the pipeline's own broker while the pipeline idles; PipelinePerSec is the client producing them
	// into payments until the pipeline has scored them all.
	RawPerSec      float64 `json:"raw_produce_consume_per_sec"`
	PipelinePerSec float64 `json:"pipeline_payments_per_sec"`
	Ratio          float64 `json:"pipeline_to_raw"`
	ReroutedShare  float64 `json:"rerouted_share"`
	// CPUSecPerMillion and PeakRSSMiB are the whole `fraudpipe run` process's: broker, detector and notifier.
	CPUSecPerMillion float64 `json:"run_cpu_seconds_per_million"`
	PeakRSSMiB       float64 `json:"run_peak_rss_mib"`
	AtRate           Latency `json:"latency_at_rate"`
	Rate             int     `json:"rate"`
}

// UsersPathResult is a users'-path run.
type UsersPathResult struct {
	Machine  string         `json:"machine"`
	Started  time.Time      `json:"started"`
	Accounts int            `json:"accounts"`
	Rows     []UsersPathRow `json:"rows"`
}

// RunUsersPath measures each case with a `fraudpipe run` of its own (a pipeline records its partitioner once).
func RunUsersPath(ctx context.Context, cfg UsersPathConfig, log *slog.Logger) (*UsersPathResult, error) {
	res := &UsersPathResult{Machine: machine(), Started: time.Now().UTC(), Accounts: cfg.Accounts}
	lines := filepath.Join(cfg.WorkDir, "payments.keyed")
	if err := writePayments(lines, cfg.Count, cfg.Accounts); err != nil {
		return nil, err
	}
	for _, c := range cfg.Cases {
		if c.Client == ClientJava {
			if _, err := exec.LookPath("java"); err != nil {
				log.Warn("java not installed: skipping the Java client's rows", "partitioner", c.Partitioner)
				continue
			}
		}
		log.Info("users' path: fraudpipe run fed by a standard client", "client", c.Client, "pipeline_partitioner", c.Partitioner)
		row, err := runUsersPathCase(ctx, cfg, c, lines, log)
		if err != nil {
			return nil, fmt.Errorf("%s into a %s pipeline: %w", c.Client, c.Partitioner, err)
		}
		res.Rows = append(res.Rows, *row)
	}
	if cfg.ResultPath != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.ResultPath, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("write results: %w", err)
		}
	}
	return res, nil
}

// writePayments writes n generated payments as "account|json" lines, the form both clients read keyed records in.
func writePayments(path string, n, accounts int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := producer.NewGenerator(42, accounts, 0.01, time.Now().Add(-time.Duration(n)*producer.Step(accounts, time.Hour)), time.Hour)
	g.IDPrefix = "u_"
	for range n {
		p := g.Next()
		w.WriteString(p.AccountID)
		w.WriteByte('|')
		w.Write(producer.Encode(p))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func runUsersPathCase(ctx context.Context, cfg UsersPathConfig, c UsersPathCase, lines string, log *slog.Logger) (*UsersPathRow, error) {
	row := &UsersPathRow{UsersPathCase: c, Matching: ClientPartitioner[c.Client] == c.Partitioner, Payments: cfg.Count}
	broker, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.WorkDir, c.Client+"-"+string(c.Partitioner))
	run, err := startRun(ctx, cfg.Binary, dir, metricsAddr, nil, "--data-dir", dir, "--rules", cfg.Rules,
		"--broker-listen", broker, "--metrics-addr", metricsAddr, "--partitions", strconv.Itoa(cfg.Partitions),
		"--partitioner", string(c.Partitioner), "--log-level", "warn", "--console-addr", "", "--api-addr", "")
	if err != nil {
		return nil, err
	}
	defer run.stop()
	if err := waitUntil(ctx, time.Minute, func() bool {
		return run.exited() || run.has(`fraudpipe_consumer_lag{group="detector"`) && run.has(`fraudpipe_consumer_lag{group="notifier"`)
	}); err != nil || run.exited() {
		return nil, fmt.Errorf("fraudpipe run did not get ready: %w", errors.Join(err, errors.New("see its output above")))
	}
	k := kafka.Config{Brokers: []string{broker}, Partitions: cfg.Partitions, Replication: 1, Flush: time.Millisecond}
	raw := "bench-raw-" + c.Client
	if err := k.EnsureTopics(ctx, []topics.Spec{{Name: raw, Retention: time.Hour}}); err != nil {
		return nil, err
	}

	// The raw baseline: the client produces the payments into a topic nobody processes and consumes them back.
	start := time.Now()
	if err := clientProduce(ctx, cfg, c.Client, broker, raw, lines); err != nil {
		return nil, fmt.Errorf("raw produce: %w", err)
	}
	if err := clientConsume(ctx, cfg, c.Client, broker, raw, cfg.Count); err != nil {
		return nil, fmt.Errorf("raw consume: %w", err)
	}
	row.RawPerSec = float64(cfg.Count) / time.Since(start).Seconds()

	// Saturation: the same payments into the pipeline, until all are scored.
	processed := func() float64 { return run.metric("fraudpipe_payments_processed_total") }
	rerouted0, cpu0 := run.metric("fraudpipe_payments_rerouted_total"), cpuSeconds([]*child{run})
	start = time.Now()
	if err := clientProduce(ctx, cfg, c.Client, broker, string(topics.Payments), lines); err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	if err := waitUntil(ctx, 10*time.Minute, func() bool { return processed() >= float64(cfg.Count) }); err != nil {
		return nil, fmt.Errorf("waiting for %d payments (processed %v): %w", cfg.Count, processed(), err)
	}
	row.PipelinePerSec = float64(cfg.Count) / time.Since(start).Seconds()
	row.Ratio = row.PipelinePerSec / row.RawPerSec
	row.ReroutedShare = (run.metric("fraudpipe_payments_rerouted_total") - rerouted0) / float64(cfg.Count)
	row.CPUSecPerMillion = (cpuSeconds([]*child{run}) - cpu0) / float64(cfg.Count) * 1e6

	// Latency at a fixed offered rate, through kcat (the Java console producer lingers a second by design).
	if c.Client == ClientKcat && cfg.Rate > 0 {
		row.Rate = cfg.Rate
		settleDisk()
		if row.AtRate, err = kcatAtRate(ctx, cfg, k, broker, processed, log); err != nil {
			return nil, err
		}
	}
	row.PeakRSSMiB = run.peakRSSMiB()
	return row, nil
}

// startRun starts `fraudpipe run` with args and env added to this process's, its notifier's log channel (one line
// per alert) in dir/alerts.log; it serves metrics on metricsAddr.
func startRun(ctx context.Context, binary, dir, metricsAddr string, env []string, args ...string) (*child, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	alertLog, err := os.Create(filepath.Join(dir, "alerts.log"))
	if err != nil {
		return nil, err
	}
	run := &child{metrics: metricsAddr, done: make(chan struct{})}
	run.cmd = exec.CommandContext(ctx, binary, append([]string{"run"}, args...)...)
	run.cmd.Env = append(os.Environ(), env...)
	run.cmd.Stdout, run.cmd.Stderr = alertLog, os.Stderr
	if err := run.cmd.Start(); err != nil {
		alertLog.Close()
		return nil, fmt.Errorf("start fraudpipe run: %w", err)
	}
	go func() {
		run.cmd.Wait()
		alertLog.Close()
		close(run.done)
	}()
	return run, nil
}

// clientProduce has the client send the keyed lines of file to topic.
func clientProduce(ctx context.Context, cfg UsersPathConfig, client, broker, topic, file string) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	var cmd *exec.Cmd
	switch client {
	case ClientKcat:
		cmd = exec.CommandContext(ctx, "kcat", "-P", "-b", broker, "-t", topic, "-K", "|", "-X", "linger.ms=5")
	case ClientJava:
		cmd = exec.CommandContext(ctx, "bash", cfg.KafkaScript, "produce", broker, topic)
	default:
		return fmt.Errorf("unknown client %q", client)
	}
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", client, err, out)
	}
	return nil
}

// clientConsume has the client read n records of topic from the start.
func clientConsume(ctx context.Context, cfg UsersPathConfig, client, broker, topic string, n int) error {
	var cmd *exec.Cmd
	switch client {
	case ClientKcat:
		cmd = exec.CommandContext(ctx, "kcat", "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-c", strconv.Itoa(n))
	case ClientJava:
		cmd = exec.CommandContext(ctx, "bash", cfg.KafkaScript, "consume", broker, topic, strconv.Itoa(n))
	default:
		return fmt.Errorf("unknown client %q", client)
	}
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w", client, err)
	}
	if got := strings.Count(string(out), "\n"); got < n {
		return fmt.Errorf("%s consumed %d of %d records", client, got, n)
	}
	return nil
}

// kcatAtRate offers payments to kcat's stdin at cfg.Rate for cfg.RateFor and measures payment-to-alert latency
// from the moment each line was written.
func kcatAtRate(ctx context.Context, cfg UsersPathConfig, k kafka.Config, broker string, processed func() float64, log *slog.Logger) (Latency, error) {
	alerts, err := newAlertWatcher(ctx, k)
	if err != nil {
		return Latency{}, err
	}
	defer alerts.close()
	n := int(float64(cfg.Rate) * cfg.RateFor.Seconds())
	log.Info("latency at a fixed offered rate through kcat", "rate", cfg.Rate, "payments", n)
	l := newLoad(Config{Accounts: cfg.Accounts}, "k_", n, alerts)
	cmd := exec.CommandContext(ctx, "kcat", "-P", "-b", broker, "-t", string(topics.Payments), "-K", "|", "-X", "linger.ms=5")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Latency{}, err
	}
	if err := cmd.Start(); err != nil {
		return Latency{}, err
	}
	before := processed()
	w := bufio.NewWriter(stdin)
	began := time.Now()
	for i := range n {
		if ahead := time.Until(began.Add(time.Duration(float64(i) / float64(cfg.Rate) * float64(time.Second)))); ahead > 0 {
			w.Flush() // what is due is on its way before we wait
			time.Sleep(ahead)
		}
		p := l.g.Next()
		if seq, err := strconv.Atoi(p.ID[len("k_pay_"):]); err == nil && seq < len(l.st.at) {
			l.st.at[seq] = time.Now().UnixNano()
		}
		w.WriteString(p.AccountID)
		w.WriteByte('|')
		w.Write(producer.Encode(p))
		w.WriteByte('\n')
	}
	w.Flush()
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return Latency{}, fmt.Errorf("kcat: %w", err)
	}
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return processed() >= before+float64(n) }); err != nil {
		return Latency{}, err
	}
	time.Sleep(time.Second) // the last alerts are on their way to the watcher
	return alerts.latencies(l.st), nil
}

// PrintUsersPath writes the users'-path rows as a table.
func PrintUsersPath(w io.Writer, r *UsersPathResult) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "users' path: `fraudpipe run` (broker, detector, notifier in one process) fed by a standard client, %d accounts\n\n", r.Accounts)
	fmt.Fprintf(w, "%-6s %-9s %-9s %9s %9s %6s %9s %8s %8s %10s\n", "client", "pipeline", "matching", "raw/s", "payments/s", "ratio", "rerouted", "CPU s/M", "RSS MiB", "p99@rate ms")
	for _, x := range r.Rows {
		p99 := "-"
		if x.Rate > 0 {
			p99 = fmt.Sprintf("%.1f@%d", x.AtRate.P99ms, x.Rate)
		}
		fmt.Fprintf(w, "%-6s %-9s %-9v %9.0f %9.0f %6.2f %8.0f%% %8.1f %8.0f %10s\n", x.Client, x.Partitioner, x.Matching,
			x.RawPerSec, x.PipelinePerSec, x.Ratio, x.ReroutedShare*100, x.CPUSecPerMillion, x.PeakRSSMiB, p99)
	}
}
