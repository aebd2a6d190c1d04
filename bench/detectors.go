package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/metrics"
)

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
		"--flush-interval", cfg.Kafka.Flush.String(), "--compression", cfg.Kafka.Compression,
		"--partitioner", string(cfg.Kafka.Partitioner))
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

func (c *child) scrape() string { return metrics.Scrape(c.metrics) }

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

// metric sums the samples name selects (metrics.SumSamples); -1 if the child does not answer.
func (c *child) metric(name string) float64 { return metrics.Query(c.metrics, name) }

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
