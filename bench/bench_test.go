package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/kafka"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// binary builds fraudpipe (with the race detector) once for the package's tests.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fraudpipe-bench-test")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "fraudpipe")
		build := exec.Command("go", "build", "-race", "-o", built, "../cmd/fraudpipe")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		buildErr = build.Run()
	})
	if buildErr != nil {
		t.Fatalf("build fraudpipe: %v", buildErr)
	}
	return built
}

// A small run of the whole harness on the embedded broker, with a real detector child: `make bench` is how the
// performance figures are produced, so it must keep working, and what it reports must add up.
func TestBenchMeasuresASmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fraudpipe and runs a detector")
	}
	dir := t.TempDir()
	bin := binary(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := embedded.StartBroker(filepath.Join(dir, "kafka"), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "results.json")
	// snappy, not the default lz4: franz-go writes lz4 frames of 4 MiB blocks, and sarama, reading them in the
	// race-instrumented detector, allocates and clears such a block per batch, which starves the run here.
	res, err := Run(ctx, Config{
		Kafka:  kafka.Config{Brokers: []string{b.Addr()}, Partitions: 3, Replication: 1, Flush: time.Millisecond, Compression: "snappy"},
		Binary: bin, Rules: "../examples/rules.yaml", Count: 4001, Rounds: 2, Accounts: 2000,
		Rates: []int{1000}, RateFor: 2 * time.Second, Detectors: 1,
		WorkDir: dir, ResultPath: out,
	}, log)
	if err != nil {
		t.Fatal(err)
	}

	// Two rounds: a baseline before, between and after them; each round against the faster of the two beside it.
	raws := res.RawRuns
	if len(raws) != 3 || slices.Min(raws) <= 0 || res.RawBeforePerSec != raws[0] || res.RawAfterPerSec != raws[2] || res.RawPerSec != slices.Max(raws) {
		t.Errorf("raw baselines %v, reported before %.0f, after %.0f, fastest %.0f", raws, res.RawBeforePerSec, res.RawAfterPerSec, res.RawPerSec)
	}
	if len(res.Rounds) != 2 || res.Rounds[0].Payments+res.Rounds[1].Payments != 4001 {
		t.Fatalf("rounds %+v, want 2 of 4001 payments in all", res.Rounds)
	}
	for i, r := range res.Rounds {
		if raw := max(raws[i], raws[i+1]); r.RawPerSec != raw || r.PipelinePerSec <= 0 || r.Ratio != r.PipelinePerSec/raw {
			t.Errorf("round %d: %+v, want its ratio against the faster of %.0f and %.0f", i+1, r, raws[i], raws[i+1])
		}
	}
	// The detector is idle during the baseline between the rounds; what it took then is reported, and is small.
	if res.RawDetectorCPU < 0 || res.RawDetectorCPU > 2 {
		t.Errorf("detector took %.2f CPU s during the baseline between rounds", res.RawDetectorCPU)
	}
	if want := (res.Rounds[0].Ratio + res.Rounds[1].Ratio) / 2; math.Abs(res.Ratio-want) > 1e-12 {
		t.Errorf("ratio %.4f, want the median of the rounds' %.4f", res.Ratio, want)
	}
	// All payments over the rounds' time together: between the slowest and the fastest round.
	lo, hi := min(res.Rounds[0].PipelinePerSec, res.Rounds[1].PipelinePerSec), max(res.Rounds[0].PipelinePerSec, res.Rounds[1].PipelinePerSec)
	if res.PipelinePerSec < lo*(1-1e-9) || res.PipelinePerSec > hi*(1+1e-9) {
		t.Errorf("pipeline %.0f/s outside its rounds' %.0f-%.0f", res.PipelinePerSec, lo, hi)
	}
	// The generator alerts about 1% of the time (its fraud patterns), more with few accounts; never none, never most.
	if res.AlertShare <= 0 || res.AlertShare > 0.2 {
		t.Errorf("alert share %.4f", res.AlertShare)
	}
	if res.AccountsPaid <= 0 || res.AccountsPaid > res.Accounts {
		t.Errorf("%d accounts paid of %d", res.AccountsPaid, res.Accounts)
	}
	if res.CPUSecPerMillion <= 0 || res.PeakRSSMiB <= 0 {
		t.Errorf("detector CPU %.1f s per million, peak RSS %.0f MiB: the child's metrics were not read", res.CPUSecPerMillion, res.PeakRSSMiB)
	}
	// Decoding a payment alone allocates; sarama, goka and the state codec add more. Hundreds would mean the
	// detector's metrics were read wrongly (or a leak of allocations into the hot path).
	if res.AllocsPerPayment < 1 || res.AllocsPerPayment > 300 || res.AllocBytesPerPayment < 100 {
		t.Errorf("detector allocations per payment: %.1f objects, %.0f bytes", res.AllocsPerPayment, res.AllocBytesPerPayment)
	}
	// Every payment writes its account's state once; states are tens to hundreds of bytes.
	if res.StateBytesAccount < 20 || res.StateBytesAccount > 2000 || res.ChangelogBytesPay < res.StateBytesAccount*0.9 {
		t.Errorf("state %.0f bytes per write, changelog %.0f bytes per payment", res.StateBytesAccount, res.ChangelogBytesPay)
	}
	for name, l := range map[string]Latency{"saturation": res.SaturationLatency, "1000/s": res.RateLatency["1000"]} {
		if l.Alerts == 0 || !(0 < l.P50ms && l.P50ms <= l.P95ms && l.P95ms <= l.P99ms && l.P99ms <= l.MaxMs) {
			t.Errorf("latency at %s: %+v", name, l)
		}
	}

	var written Result
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &written); err != nil {
		t.Fatalf("results file: %v", err)
	}
	if written.PipelinePerSec != res.PipelinePerSec || written.RawAfterPerSec != res.RawAfterPerSec || written.RateLatency["1000"] != res.RateLatency["1000"] {
		t.Errorf("results file differs from the result: %s", raw)
	}
	var table bytes.Buffer
	Print(&table, res)
	t.Logf("\n%s", table.String())
	for _, want := range []string{"raw broker produce+consume", "before the pipeline, after it", "pipeline / raw", "round 2:", "allocations per payment", "at 1000/s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("printed table lacks %q:\n%s", want, table.String())
		}
	}

	// --count-only: the same harness with detectors that only count. Its state is a few dozen bytes (a scored
	// one about 140), nothing alerts,
	// and the latency runs, which would time no alert, are left out. A broker of its own: the first run's
	// group offsets and table would carry over.
	b2, err := embedded.StartBroker(filepath.Join(dir, "kafka-count-only"), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cres, err := Run(ctx, Config{
		Kafka:  kafka.Config{Brokers: []string{b2.Addr()}, Partitions: 3, Replication: 1, Flush: time.Millisecond, Compression: "snappy"},
		Binary: bin, Rules: "../examples/rules.yaml", Count: 2000, Rounds: 1, Accounts: 2000,
		Rates: []int{1000}, RateFor: 2 * time.Second, Detectors: 1, WorkDir: filepath.Join(dir, "count-only"),
		CountOnly: true,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !cres.CountOnly || cres.AlertShare != 0 || len(cres.RateLatency) != 0 || cres.PipelinePerSec <= 0 || cres.ChangelogBytesPay <= 0 || cres.ChangelogBytesPay > res.ChangelogBytesPay/2 {
		t.Errorf("count-only run: %+v", cres)
	}
	table.Reset()
	Print(&table, cres)
	if !strings.Contains(table.String(), "counting only") {
		t.Errorf("printed table does not say the detectors only counted:\n%s", table.String())
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{0.31}, 0.31}, {[]float64{0.36, 0.29, 0.33}, 0.33}, {[]float64{0.4, 0.1, 0.3, 0.2}, 0.25}} {
		if got := median(slices.Clone(c.in)); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// A detector that exits before it is ready (its metrics port taken between the pick and its bind) is started
// again on another port; one that keeps exiting is reported at once, not after the readiness timeout.
func TestDetectorExitingAtStartUpIsRetriedThenReported(t *testing.T) {
	falseBin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1)")
	}
	start := time.Now()
	_, err = startDetector(context.Background(), Config{Binary: falseBin, WorkDir: t.TempDir(), Kafka: kafka.Config{Brokers: []string{"127.0.0.1:1"}}}, 0)
	if err == nil || !strings.Contains(err.Error(), "exited at start-up 3 times") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("reported after %s", d)
	}
}

// The users' path: `fraudpipe run` fed by kcat, once into a pipeline placing keys as kcat does and once into one
// that does not. Every payment is scored; the matching pipeline re-routes none, the other most (five in six with
// six partitions, by chance the rest land right), and the figures add up.
func TestUsersPathMeasuresEachCase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fraudpipe and runs it")
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it")
		}
		t.Skip("kcat is not installed")
	}
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "users-path.json")
	res, err := RunUsersPath(ctx, UsersPathConfig{
		Binary: bin, Rules: "../examples/rules.yaml", WorkDir: t.TempDir(), Count: 3000, Accounts: 500, Partitions: 6,
		Rate: 500, RateFor: 2 * time.Second, KafkaScript: "../e2e/kafka/kafka.sh", ResultPath: out,
		Cases: []UsersPathCase{{Client: ClientKcat, Partitioner: kafka.CRC32}, {Client: ClientKcat, Partitioner: kafka.Murmur2}},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	match, miss := res.Rows[0], res.Rows[1]
	if !match.Matching || miss.Matching {
		t.Errorf("matching flags %v, %v", match.Matching, miss.Matching)
	}
	if match.ReroutedShare != 0 {
		t.Errorf("kcat into a crc32 pipeline: %.0f%% re-routed", match.ReroutedShare*100)
	}
	if miss.ReroutedShare < 0.6 || miss.ReroutedShare > 0.95 {
		t.Errorf("kcat into a murmur2 pipeline: %.0f%% re-routed, want about five in six", miss.ReroutedShare*100)
	}
	for _, r := range res.Rows {
		if r.RawPerSec <= 0 || r.PipelinePerSec <= 0 || math.Abs(r.Ratio-r.PipelinePerSec/r.RawPerSec) > 1e-9 || r.CPUSecPerMillion <= 0 || r.PeakRSSMiB <= 0 {
			t.Errorf("%s into %s: %+v", r.Client, r.Partitioner, r)
		}
		if r.Rate != 500 || r.AtRate.Alerts == 0 || r.AtRate.P99ms <= 0 {
			t.Errorf("%s into %s: latency at %d/s %+v", r.Client, r.Partitioner, r.Rate, r.AtRate)
		}
	}
	var buf bytes.Buffer
	PrintUsersPath(&buf, res)
	if !strings.Contains(buf.String(), "kcat   crc32") {
		t.Errorf("table:\n%s", buf.String())
	}
	if b, err := os.ReadFile(out); err != nil || !json.Valid(b) {
		t.Errorf("results file: %v", err)
	}
}
