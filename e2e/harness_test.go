// Package e2e runs the real fraudpipe binary against a real broker over TCP, with kcat (librdkafka) as an
// independent client. Each test starts what it needs and polls with deadlines.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/metrics"
)

var binary string // the fraudpipe binary built for this run

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fraudpipe-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "fraudpipe")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/fraudpipe")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fraudpipe:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool skips a test when an external tool is missing on a developer's machine, and fails it in CI,
// where .ci/run installs everything.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it", name)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, name)
	}
}

// freeAddr picks a port for a broker, which must come back at the same address when restarted; everything else
// binds port 0 (see metricsAddr).
func freeAddr(t *testing.T) string {
	t.Helper()
	usedMu.Lock()
	defer usedMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may hand a just-released port out again: two addresses taken in a row (a broker's and
		// its controller's) must differ, so none is given twice in a run.
		if !used[addr] {
			used[addr] = true
			return addr
		}
	}
}

var (
	usedMu sync.Mutex
	used   = map[string]bool{}
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// waitScored waits until the detector (or `fraudpipe run`) behind metricsAddr has processed n payments and the
// broker has acknowledged every write they caused. Processed alone is not enough to read the alerts topic: the
// last alerts may still wait in the producer's buffer for their batch.
func waitScored(t *testing.T, metricsAddr string, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d payments to be scored and their writes acknowledged", n), func() bool {
		return metric(metricsAddr, "fraudpipe_payments_processed_total") == float64(n) &&
			metric(metricsAddr, "fraudpipe_producer_buffered_records") == 0
	})
}

// proc is a running fraudpipe process whose output goes to files.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdout  string
	stderr  string
	done    chan struct{}
	exitErr error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, name: name, stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	out, _ := os.Create(p.stdout)
	errf, _ := os.Create(p.stderr)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	// Parts with a console bind a port of their own, as with metrics: tests run several at once.
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1", "FRAUDPIPE_CONSOLE_ADDR=127.0.0.1:0", "FRAUDPIPE_API_ADDR=127.0.0.1:0")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		out.Close()
		errf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s stderr (last 4 KiB):\n%s", name, tail(p.Stderr(), 4096))
			// FRAUDPIPE_E2E_LOGDIR keeps whole logs of failed tests, for the failures a tail does not explain.
			if dir := os.Getenv("FRAUDPIPE_E2E_LOGDIR"); dir != "" && os.MkdirAll(dir, 0o755) == nil {
				base := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"."+name)
				os.WriteFile(base+".stderr", []byte(p.Stderr()), 0o644)
				os.WriteFile(base+".stdout", []byte(p.Stdout()), 0o644)
			}
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) Stdout() string { b, _ := os.ReadFile(p.stdout); return string(b) }
func (p *proc) Stderr() string { b, _ := os.ReadFile(p.stderr); return string(b) }

// kill9 kills the process the way a crash does: no shutdown code runs.
func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// interrupt sends Ctrl-C and waits for a clean exit.
func (p *proc) interrupt() {
	p.t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not stop within 30s of Ctrl-C", p.name)
	}
	if p.exitErr != nil {
		p.t.Fatalf("%s exited with %v after Ctrl-C\n%s", p.name, p.exitErr, tail(p.Stderr(), 4096))
	}
}

func (p *proc) waitStderr(timeout time.Duration, substr string) {
	p.t.Helper()
	waitFor(p.t, timeout, fmt.Sprintf("%s to log %q", p.name, substr), func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited: %v\n%s", p.name, p.exitErr, tail(p.Stderr(), 4096))
		default:
		}
		return strings.Contains(p.Stderr(), substr)
	})
}

// metricsAddr returns the address p serves metrics on, read from its log. Children get --metrics-addr
// 127.0.0.1:0 and bind a port of their own: a port picked here and released could be taken, before the child binds
// it, by another child's listener on port 0 or by an outgoing connection. (Brokers keep addresses picked here: a
// restarted broker must come back where its clients look for it.)
func (p *proc) metricsAddr() string {
	p.t.Helper()
	var addr string
	waitFor(p.t, 30*time.Second, p.name+" to serve metrics", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited: %v\n%s", p.name, p.exitErr, tail(p.Stderr(), 4096))
		default:
		}
		m := servingMetrics.FindStringSubmatch(p.Stderr())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

var servingMetrics = regexp.MustCompile(`msg="serving metrics" addr=http://([^/\s]+)/metrics`)

// scrape returns an instance's /metrics page ("" when it does not answer).
func scrape(addr string) string { return metrics.Scrape(addr) }

// metric reads one unlabelled sample (or the sum of a labelled family) from a /metrics endpoint; -1 when the
// endpoint does not answer.
func metric(addr, name string) float64 { return metrics.Query(addr, name) }

// record is a Kafka record as kcat prints it.
type record struct {
	Key     string
	Headers map[string]string
	Value   string
}

// kcatProduce sends lines with kcat. With keyed, each line is "key|value"; kcat then partitions with
// librdkafka's consistent_random (CRC32), not goka's FNV-1a, which the detector must cope with.
func kcatProduce(t *testing.T, brokers, topic string, keyed bool, lines ...string) {
	t.Helper()
	if err := kcatProduceErr(brokers, topic, keyed, lines...); err != nil {
		t.Fatal(err)
	}
}

// kcatProduceErr is kcatProduce for goroutines other than the test's: it reports instead of failing the test.
func kcatProduceErr(brokers, topic string, keyed bool, lines ...string) error {
	var extra []string
	if keyed {
		extra = []string{"-K", "|"}
	}
	return kcatProduceWithErr(brokers, topic, extra, lines...)
}

// kcatProduceWith sends lines with kcat and extra arguments (e.g. -K "|" for keyed lines, -Z for null values).
func kcatProduceWith(t *testing.T, brokers, topic string, extra []string, lines ...string) {
	t.Helper()
	if err := kcatProduceWithErr(brokers, topic, extra, lines...); err != nil {
		t.Fatal(err)
	}
}

func kcatProduceWithErr(brokers, topic string, extra []string, lines ...string) error {
	// Idempotent, so that a batch retried after a broker restart cannot land behind later ones: librdkafka
	// without it keeps many requests in flight and reorders on retry, and an account's payments out of order
	// are scored differently from a single in-order run.
	args := append([]string{"-P", "-b", brokers, "-t", topic, "-X", "linger.ms=5", "-X", "enable.idempotence=true"}, extra...)
	cmd := exec.Command("kcat", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kcat produce: %v\n%s", err, out)
	}
	return nil
}

// kcatConsume reads a topic from the start to its current end.
func kcatConsume(t *testing.T, brokers, topic string) []record {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%k\x1f%h\x1f%s\x1e")
	cmd.Stdout = &out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat consume %s: %v\n%s", topic, err, stderr.String())
	}
	var recs []record
	for _, r := range strings.Split(out.String(), "\x1e") {
		if r == "" {
			continue
		}
		f := strings.SplitN(r, "\x1f", 3)
		rec := record{Key: f[0], Headers: map[string]string{}, Value: f[2]}
		for _, h := range strings.Split(f[1], ",") {
			if k, v, ok := strings.Cut(h, "="); ok {
				rec.Headers[k] = v
			}
		}
		recs = append(recs, rec)
	}
	return recs
}

// cluster is the broker a test runs against.
type cluster struct {
	brokers string
	t       *testing.T
	dataDir string
	ctrl    string   // Apache Kafka's controller port
	proc    *proc    // the embedded broker's process
	extra   []string // flags of the embedded broker's process
}

// The suite runs against the broker FRAUDPIPE_E2E_BROKER names, like watermill runs one pub/sub suite against
// every backend: "embedded" (default, `fraudpipe broker`) or "apache" (Apache Kafka from Maven Central, started by
// e2e/kafka/kafka.sh; `make e2e-kafka`).
func brokerKind() string {
	if k := os.Getenv("FRAUDPIPE_E2E_BROKER"); k != "" {
		return k
	}
	return "embedded"
}

// embeddedOnly skips a test of the embedded broker's own behaviour (fraudpipe run) when the suite runs against
// another broker.
func embeddedOnly(t *testing.T) {
	t.Helper()
	if brokerKind() != "embedded" {
		t.Skipf("tests the embedded broker of fraudpipe run; the suite runs against %s", brokerKind())
	}
}

// startBroker starts a fresh broker for one test, as its own process, so detectors can be killed without it.
func startBroker(t *testing.T, dataDir string) *cluster {
	t.Helper()
	return startBrokerWith(t, dataDir)
}

// startBrokerWith starts a broker whose embedded form (`fraudpipe broker`, which creates the pipeline's topics)
// takes the extra flags, e.g. the pipeline's --partitioner.
func startBrokerWith(t *testing.T, dataDir string, extra ...string) *cluster {
	t.Helper()
	requireTool(t, "kcat")
	c := &cluster{brokers: freeAddr(t), t: t, dataDir: dataDir, extra: extra}
	switch brokerKind() {
	case "embedded":
	case "apache":
		requireTool(t, "java")
		_, c.ctrl, _ = net.SplitHostPort(freeAddr(t))
		t.Cleanup(func() {
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
				t.Logf("--- kafka server.log (last 4 KiB):\n%s", tail(string(log), 4096))
			}
			c.dumpTopics() // registered last, so it runs first, while the broker still serves
			exec.Command("bash", "kafka/kafka.sh", "stop", dataDir).Run()
		})
	default:
		t.Fatalf("FRAUDPIPE_E2E_BROKER=%q: want embedded or apache", brokerKind())
	}
	if brokerKind() == "apache" {
		// A port free a moment ago can be taken by the time the JVM binds it: try fresh ports, a few times.
		for range 2 {
			_, port, _ := net.SplitHostPort(c.brokers)
			if exec.Command("bash", "kafka/kafka.sh", "start", c.dataDir, port, c.ctrl).Run() == nil {
				return c
			}
			exec.Command("bash", "kafka/kafka.sh", "stop", c.dataDir).Run()
			os.RemoveAll(c.dataDir)
			c.brokers = freeAddr(t)
			_, c.ctrl, _ = net.SplitHostPort(freeAddr(t))
		}
	}
	c.up()
	return c
}

// up starts the broker on its address and data directory (again, after down).
func (c *cluster) up() {
	c.t.Helper()
	if brokerKind() == "apache" {
		_, port, _ := net.SplitHostPort(c.brokers)
		if out, err := exec.Command("bash", "kafka/kafka.sh", "start", c.dataDir, port, c.ctrl).CombinedOutput(); err != nil {
			c.t.Fatalf("start Apache Kafka: %v\n%s", err, out)
		}
		return
	}
	c.proc = start(c.t, "broker", append([]string{"broker", "--data-dir", c.dataDir, "--broker-listen", c.brokers, "--metrics-addr", ""}, c.extra...)...)
	c.proc.waitStderr(30*time.Second, "embedded broker listening")
	// Registered after the broker's own cleanup, so it runs first, while this broker still serves; a broker
	// replaced by a later up leaves the dump to its successor.
	proc := c.proc
	c.t.Cleanup(func() {
		if c.proc == proc {
			c.dumpTopics()
		}
	})
}

// dumpTopics keeps every record of a failed test's topics in FRAUDPIPE_E2E_LOGDIR, one file per topic, one
// line per record (partition, offset, key, headers, value): losses the logs do not explain show in the data.
func (c *cluster) dumpTopics() {
	dir := os.Getenv("FRAUDPIPE_E2E_LOGDIR")
	if dir == "" || !c.t.Failed() {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("dump topics: %v", err)
		return
	}
	for _, topic := range []string{"payments", "detector-loop", "detector-table", "alerts"} {
		// Bounded: kcat waits forever for a broker that is down.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, "kcat", "-C", "-b", c.brokers, "-t", topic, "-o", "beginning", "-e", "-q",
			"-f", "%p\t%o\t%k\t%h\t%s\n").Output()
		cancel()
		if err != nil {
			c.t.Logf("dump %s: %v", topic, err)
		}
		os.WriteFile(filepath.Join(dir, strings.ReplaceAll(c.t.Name(), "/", "_")+".topic."+topic), out, 0o644)
	}
}

// down stops the broker cleanly, as an operator's restart does.
func (c *cluster) down() {
	c.t.Helper()
	if brokerKind() == "apache" {
		if out, err := exec.Command("bash", "kafka/kafka.sh", "stop", c.dataDir).CombinedOutput(); err != nil {
			c.t.Fatalf("stop Apache Kafka: %v\n%s", err, out)
		}
		return
	}
	c.proc.interrupt()
}

// lines returns the non-empty lines of s that contain substr.
func lines(s, substr string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}
