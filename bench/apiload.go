package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fraudpipe/fraudpipe/producer"
)

// The decision API's load: `fraudpipe run` (broker, detector, notifier and API in one process) answering
// POST /v1/payments from many concurrent HTTP clients in this process, all on one machine.

// APIConfig is what to measure.
type APIConfig struct {
	Binary, Rules, WorkDir string
	Accounts, Partitions   int
	// Rates are the offered request rates of the latency runs, each for RateFor; the requests are sent at their
	// scheduled times whatever the answers (open loop), and a request's latency counts from its scheduled time, so
	// a stall shows in the figures instead of slowing the offered load.
	Rates   []int
	RateFor time.Duration
	// Clients keep one request each in flight at saturation, for SaturateFor: a run per entry. More clients
	// in flight give larger batches (Redis lookups, Kafka writes) and so more decisions per second, at the
	// cost of latency; the figures show both.
	Clients     []int
	SaturateFor time.Duration
	ResultPath  string
	// ProfileDir, when set, gets CPU profiles of fraudpipe run (api-run.pprof) and of the clients (api-clients.pprof)
	// during the last saturation run.
	ProfileDir string
	// EmbeddedRedis keeps the API's keys in fraudpipe run's in-process Redis; otherwise a redis-server is started
	// for the run (when installed), as a deployment of the API would have one.
	EmbeddedRedis bool
}

// APIRow is one run's figures: decisions are answers that are not the fallback.
type APIRow struct {
	Offered     int     `json:"offered_per_sec"` // 0 at saturation
	Clients     int     `json:"clients,omitempty"`
	Requests    int     `json:"requests"`
	Decisions   int     `json:"decisions"`
	Fallbacks   int     `json:"fallbacks"`
	Errors      int     `json:"errors"`
	PerSec      float64 `json:"decisions_per_sec"`
	Latency     Latency `json:"latency"`
	CPUSecPer1M float64 `json:"run_cpu_seconds_per_million"`
}

// APIResult is a run of the API benchmark.
type APIResult struct {
	Machine    string    `json:"machine"`
	Started    time.Time `json:"started"`
	Deadline   string    `json:"deadline"`
	Redis      string    `json:"redis"`
	Rows       []APIRow  `json:"rows"`
	PeakRSSMiB float64   `json:"run_peak_rss_mib"`
}

// apiBenchKey is the key of the run the benchmark starts; nothing else uses it.
const apiBenchKey = "bench-0123456789abcdef0123456789abcdef"

// RunAPI starts `fraudpipe run` with the API and measures each rate, then saturation.
func RunAPI(ctx context.Context, cfg APIConfig, log *slog.Logger) (*APIResult, error) {
	res := &APIResult{Machine: machine(), Started: time.Now().UTC(), Deadline: "1s"}
	ports := make([]string, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	broker, metricsAddr, apiAddr := ports[0], ports[1], ports[2]
	dir := filepath.Join(cfg.WorkDir, "api")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"--data-dir", dir, "--rules", cfg.Rules,
		"--broker-listen", broker, "--metrics-addr", metricsAddr, "--partitions", strconv.Itoa(cfg.Partitions),
		"--log-level", "warn", "--console-addr", "", "--api-addr", apiAddr, "--api-rate", "0", "--api-deadline", res.Deadline}
	res.Redis = "embedded"
	if _, err := exec.LookPath("redis-server"); err == nil && !cfg.EmbeddedRedis {
		url, stop, err := startRedisServer(ctx, dir)
		if err != nil {
			return nil, err
		}
		defer stop()
		args = append(args, "--redis", url)
		res.Redis = "redis-server on 127.0.0.1, no persistence"
	} else if !cfg.EmbeddedRedis {
		log.Warn("redis-server not installed: the API's keys go to the embedded Redis, whose expiry pauses grow with them")
	}
	run, err := startRun(ctx, cfg.Binary, dir, metricsAddr, []string{"FRAUDPIPE_API_KEYS=bench:" + apiBenchKey}, args...)
	if err != nil {
		return nil, err
	}
	defer run.stop()
	base := "http://" + apiAddr
	tr := &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if err := waitUntil(ctx, 2*time.Minute, func() bool {
		resp, err := hc.Get(base + "/v1/openapi.yaml")
		if err == nil {
			resp.Body.Close()
		}
		return run.exited() || err == nil && resp.StatusCode == 200
	}); err != nil || run.exited() {
		return nil, fmt.Errorf("fraudpipe run's API did not get ready: %w", errors.Join(err, errors.New("see its output above")))
	}
	l := &apiLoad{addr: apiAddr,
		gen: producer.NewGenerator(7, cfg.Accounts, 0.01, time.Now().Add(-time.Hour), time.Hour)}
	l.gen.IDPrefix = "api_"
	// A warm-up: connections open, the group settled, the first pages of the store touched.
	if _, err := l.atRate(ctx, 500, 5*time.Second); err != nil {
		return nil, err
	}
	for _, rate := range cfg.Rates {
		settleDisk()
		cpu0 := cpuSeconds([]*child{run})
		row, err := l.atRate(ctx, rate, cfg.RateFor)
		if err != nil {
			return nil, err
		}
		row.CPUSecPer1M = (cpuSeconds([]*child{run}) - cpu0) / float64(max(row.Requests, 1)) * 1e6
		log.Info("decision API at a fixed rate", "offered", rate, "decisions_per_sec", int(row.PerSec), "p99_ms", row.Latency.P99ms, "fallbacks", row.Fallbacks)
		res.Rows = append(res.Rows, row)
	}
	for i, clients := range cfg.Clients {
		settleDisk()
		cpu0 := cpuSeconds([]*child{run})
		profiled := make(chan error, 1)
		go func() {
			if cfg.ProfileDir == "" || i != len(cfg.Clients)-1 {
				profiled <- nil
				return
			}
			self := make(chan error, 1)
			go func() {
				self <- profileSelf(ctx, cfg.SaturateFor-time.Second, filepath.Join(cfg.ProfileDir, "api-clients.pprof"))
			}()
			profiled <- errors.Join(run.profile(ctx, cfg.SaturateFor-time.Second, filepath.Join(cfg.ProfileDir, "api-run.pprof")), <-self)
		}()
		row, err := l.saturate(ctx, clients, cfg.SaturateFor)
		if perr := <-profiled; perr != nil {
			log.Warn("profile of fraudpipe run failed", "err", perr)
		}
		if err != nil {
			return nil, err
		}
		row.CPUSecPer1M = (cpuSeconds([]*child{run}) - cpu0) / float64(max(row.Requests, 1)) * 1e6
		log.Info("decision API at saturation", "clients", clients, "decisions_per_sec", int(row.PerSec), "p99_ms", row.Latency.P99ms)
		res.Rows = append(res.Rows, row)
	}
	res.PeakRSSMiB = run.peakRSSMiB()
	if cfg.ResultPath != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.ResultPath, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("write results: %w", err)
		}
	}
	return res, nil
}

// startRedisServer runs redis-server on a free port for the run, without persistence (the API's keys are
// caches of what Kafka holds).
func startRedisServer(ctx context.Context, dir string) (url string, stop func(), err error) {
	addr, err := freePort()
	if err != nil {
		return "", nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.CommandContext(ctx, "redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		stop()
		return "", nil, fmt.Errorf("redis-server did not listen: %w", err)
	}
	return "redis://" + addr + "/0", stop, nil
}

type apiLoad struct {
	addr string
	mu   sync.Mutex
	gen  *producer.Generator
}

func (l *apiLoad) next() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return producer.Encode(l.gen.Next())
}

// outcome of one request.
type outcome struct {
	ms       float64
	fallback bool
	err      bool
}

// conn is one keep-alive HTTP/1.1 connection to the API, driven by hand: Go's http.Client spent about as much CPU
// per request as the server, on the same two cores, and the benchmark is about the server.
type conn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

func (l *apiLoad) dial() (*conn, error) {
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 8192)}, nil
}

// post sends one payment and reads the answer; the connection is closed (and nil) after an error.
func (l *apiLoad) post(cn **conn, body []byte) (fallback bool, err error) {
	if *cn == nil {
		if *cn, err = l.dial(); err != nil {
			return false, err
		}
	}
	c := *cn
	defer func() {
		if err != nil {
			c.c.Close()
			*cn = nil
		}
	}()
	c.buf = append(c.buf[:0], "POST /v1/payments HTTP/1.1\r\nHost: "...)
	c.buf = append(c.buf, l.addr...)
	c.buf = append(c.buf, "\r\nAuthorization: Bearer "+apiBenchKey+"\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.c.Write(c.buf); err != nil {
		return false, err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	ok := bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		if len(line) <= 2 {
			break
		}
		if v, found := bytes.CutPrefix(line, []byte("Content-Length: ")); found {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return false, errors.New("answer without Content-Length")
	}
	if cap(c.buf) < length {
		c.buf = make([]byte, length)
	}
	b := c.buf[:length]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("%s %s", bytes.TrimSpace(status), b)
	}
	return bytes.Contains(b, []byte(`"fallback":true`)), nil
}

// atRate sends rate requests per second for d, each at its scheduled time from a pool of senders.
func (l *apiLoad) atRate(ctx context.Context, rate int, d time.Duration) (APIRow, error) {
	n := int(float64(rate) * d.Seconds())
	type job struct {
		at   time.Time
		body []byte
	}
	jobs := make(chan job, n)
	out := make([]outcome, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr atomic.Value
	senders := min(max(rate/20, 64), 1024) // enough for a 20 ms answer at the rate, with room for stalls
	for range senders {
		wg.Go(func() {
			var cn *conn
			defer func() {
				if cn != nil {
					cn.c.Close()
				}
			}()
			for j := range jobs {
				fallback, err := l.post(&cn, j.body)
				o := outcome{ms: float64(time.Since(j.at).Microseconds()) / 1000, fallback: fallback, err: err != nil}
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- job{at: at, body: l.next()}
	}
	close(jobs)
	wg.Wait()
	row := summarizeAPI(out, time.Since(start))
	row.Offered = rate
	if e := firstErr.Load(); e != nil && row.Errors > row.Requests/100 {
		return row, fmt.Errorf("%d of %d requests failed at %d/s, the first: %s", row.Errors, row.Requests, rate, e)
	}
	return row, ctx.Err()
}

// saturate keeps clients requests in flight for d.
func (l *apiLoad) saturate(ctx context.Context, clients int, d time.Duration) (APIRow, error) {
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var mine []outcome
			var cn *conn
			defer func() {
				if cn != nil {
					cn.c.Close()
				}
			}()
			for time.Now().Before(stop) && ctx.Err() == nil {
				body := l.next()
				t := time.Now()
				fallback, err := l.post(&cn, body)
				mine = append(mine, outcome{ms: float64(time.Since(t).Microseconds()) / 1000, fallback: fallback, err: err != nil})
			}
			mu.Lock()
			out = append(out, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	row := summarizeAPI(out, time.Since(start))
	row.Clients = clients
	return row, ctx.Err()
}

func summarizeAPI(out []outcome, took time.Duration) APIRow {
	row := APIRow{Requests: len(out)}
	var lat []float64
	for _, o := range out {
		switch {
		case o.err:
			row.Errors++
		case o.fallback:
			row.Fallbacks++
		default:
			row.Decisions++
		}
		if !o.err {
			lat = append(lat, o.ms)
		}
	}
	row.PerSec = float64(row.Decisions) / took.Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		row.Latency = Latency{Alerts: len(lat), P50ms: q(0.50), P95ms: q(0.95), P99ms: q(0.99), MaxMs: lat[len(lat)-1]}
	}
	return row
}

// PrintAPI writes the figures as a table.
func PrintAPI(w io.Writer, r *APIResult) {
	fmt.Fprintf(w, "decision API: fraudpipe run (broker, detector, notifier, API) and the HTTP clients on %s\n", r.Machine)
	fmt.Fprintf(w, "%-12s %9s %10s %9s %8s %8s %8s %8s %10s\n", "offered/s", "requests", "decided/s", "fallback", "p50 ms", "p95 ms", "p99 ms", "max ms", "CPU s/M")
	for _, row := range r.Rows {
		offered := strconv.Itoa(row.Offered)
		if row.Offered == 0 {
			offered = fmt.Sprintf("sat (%d cl)", row.Clients)
		}
		fmt.Fprintf(w, "%-12s %9d %10.0f %9d %8.1f %8.1f %8.1f %8.1f %10.1f\n", offered, row.Requests, row.PerSec, row.Fallbacks,
			row.Latency.P50ms, row.Latency.P95ms, row.Latency.P99ms, row.Latency.MaxMs, row.CPUSecPer1M)
	}
	fmt.Fprintf(w, "peak RSS of fraudpipe run: %.0f MiB; Redis: %s; deadline %s (a fallback is an answer that missed it)\n", r.PeakRSSMiB, r.Redis, r.Deadline)
}
