// Package processors holds what fraudpipe's goka groups share: supervision (a goka processor runs once; when
// it stops on an error it is rebuilt) and local storage tied to the cluster it mirrors. The groups themselves
// live in the subpackages, one per group.
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/lovoo/goka"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors/store"
)

// Supervisor runs a processor and rebuilds it whenever it stops on an error, until ctx is done.
type Supervisor struct {
	Name  string
	Build func() (*goka.Processor, error)
	// Storage is the directory of the group's local storage; it is wiped when goka finds it ahead of the
	// changelog (the table topic was recreated), since the changelog is the truth.
	Storage string
	Log     *slog.Logger
	// Guard, when set, is the group's guard: once it stops the processor (PolicyStop), the Supervisor leaves it
	// stopped.
	Guard   *Guard
	Metrics *Metrics // nil: restarts are only logged
	// Stable is how long a processor must run without failing for its earlier failures to be forgiven: the
	// backoff starts again from its first step, and it counts as ready again. 0: a minute.
	Stable time.Duration
	// LiveFailures is how many failures in a row (no stable run between them) make the processor count as not
	// live: it is in a restart loop that restarting it again will not end. 0: 5.
	LiveFailures int
	// FirstBackoff is the wait before the first restart, doubled up to 30 s for each failure in a row. 0: 1 s.
	FirstBackoff time.Duration

	current atomic.Pointer[goka.Processor]

	mu       sync.Mutex
	state    string // starting, running, restarting, stopped
	failures int    // in a row, since the last stable run
	restarts int    // since Run started
	lastErr  error
	since    time.Time // when the current run started
}

// Current returns the running processor, or nil between runs.
func (s *Supervisor) Current() *goka.Processor { return s.current.Load() }

// Run blocks until ctx is done. A failing processor is rebuilt with capped exponential backoff, except once its
// Guard stopped it.
func (s *Supervisor) Run(ctx context.Context) error {
	first := s.FirstBackoff
	if first <= 0 {
		first = time.Second
	}
	b := &backoff.ExponentialBackOff{InitialInterval: first, RandomizationFactor: 0.1, Multiplier: 2, MaxInterval: 30 * time.Second}
	b.Reset()
	for {
		s.set("starting", nil, false)
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if s.Guard != nil && s.Guard.Stopped() != "" {
			s.set("stopped", err, true)
			s.Log.Error("processor stopped by the record failure policy; it stays stopped until fraudpipe restarts",
				"processor", s.Name, "reason", s.Guard.Stopped())
			<-ctx.Done()
			return nil
		}
		if err != nil && strings.Contains(err.Error(), "our cache has one") && s.Storage != "" {
			s.Log.Warn("local storage is ahead of the changelog; rebuilding it from kafka", "processor", s.Name, "dir", s.Storage)
			if rmErr := os.RemoveAll(s.Storage); rmErr != nil {
				return fmt.Errorf("%s: wipe storage: %w", s.Name, rmErr)
			}
		}
		if time.Since(started) > s.stable() {
			b.Reset()
		}
		s.set("restarting", err, time.Since(started) > s.stable())
		wait := b.NextBackOff()
		if s.Metrics != nil {
			s.Metrics.Restarts.WithLabelValues(s.Name).Inc()
		}
		restarts, inARow := s.counts()
		s.Log.Error("processor stopped; restarting", "processor", s.Name, "err", err, "in", wait.Round(time.Millisecond),
			"restart", restarts, "failures_in_a_row", inARow)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (s *Supervisor) runOnce(ctx context.Context) error {
	p, err := s.Build()
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	s.current.Store(p)
	defer s.current.Store(nil)
	s.set("running", nil, false)
	err = p.Run(ctx)
	if err == nil && ctx.Err() == nil {
		err = errors.New("stopped without error")
	}
	return err
}

// set records a state change; err, when not nil, is a failure, the first in a row when the run before it was
// stable.
func (s *Supervisor) set(state string, err error, stable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == "running" {
		s.since = time.Now()
	}
	s.state = state
	if state == "restarting" {
		s.restarts++
	}
	if err != nil {
		if stable {
			s.failures = 0
		}
		s.failures++
		s.lastErr = err
	}
}

// counts returns how often the processor was restarted and how many failures in a row it has had.
func (s *Supervisor) counts() (restarts, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts, s.failures
}

func (s *Supervisor) stable() time.Duration {
	if s.Stable <= 0 {
		return time.Minute
	}
	return s.Stable
}

// Status says whether the processor is live and ready, and why not. Live: not stopped by the policy and not in a
// restart loop (LiveFailures failures in a row, none of the runs between them lasting Stable). Ready: live, running,
// and its tables recovered.
func (s *Supervisor) Status() metrics.Status {
	s.mu.Lock()
	state, failures, lastErr, since := s.state, s.failures, s.lastErr, s.since
	s.mu.Unlock()
	liveFailures := s.LiveFailures
	if liveFailures <= 0 {
		// Above the Guard's attempts at one record: a poison record it skips after DefaultMaxAttempts failures
		// must not make the processor look dead.
		liveFailures = 2 * DefaultMaxAttempts
	}
	if failures > 0 && state == "running" && time.Since(since) > s.stable() {
		failures = 0 // forgiven: the run that follows them has been stable
	}
	last := ""
	if lastErr != nil {
		last = firstLine(lastErr.Error())
	}
	switch {
	case state == "stopped":
		return metrics.Status{Detail: "stopped by the record failure policy: " + s.Guard.Stopped()}
	case state == "" || state == "starting":
		return metrics.Status{Live: failures < liveFailures, Detail: withFailures("starting", failures, last)}
	case state == "restarting":
		return metrics.Status{Live: failures < liveFailures, Detail: withFailures("restarting", failures, last)}
	}
	if p := s.Current(); p == nil || !p.Recovered() {
		return metrics.Status{Live: failures < liveFailures, Detail: withFailures("recovering its tables", failures, last)}
	}
	if failures >= liveFailures {
		return metrics.Status{Detail: withFailures(fmt.Sprintf("running again; in a restart loop until it runs %s without failing", s.stable()), failures, last)}
	}
	return metrics.Status{Live: true, Ready: true, Detail: withFailures("running", failures, last)}
}

func withFailures(state string, failures int, last string) string {
	if failures == 0 {
		return state
	}
	return fmt.Sprintf("%s after %d failure(s) in a row; last: %s", state, failures, last)
}

// firstLine keeps a goka error readable in a health answer: goka nests errors in lists ("1 error occurred:\n\t* …")
// and its panics carry a stack trace after the message.
func firstLine(s string) string {
	s = errorList.ReplaceAllString(s, "")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return cut(s, 512)
}

var errorList = regexp.MustCompile(`\d+ errors? occurred:\s*\* `)

// StorageDir returns where a group keeps its local storage: below base, per cluster id. Storage of other
// cluster ids under base belongs to a broker whose data no longer backs this directory (a wiped embedded data
// dir, a different cluster); it is removed, and said so, instead of being trusted.
func StorageDir(base, clusterID string, log *slog.Logger) (string, error) {
	entries, err := os.ReadDir(base)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read state dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != clusterID {
			log.Warn("removing local state of another kafka cluster", "dir", filepath.Join(base, e.Name()), "cluster", clusterID)
			if err := os.RemoveAll(filepath.Join(base, e.Name())); err != nil {
				return "", fmt.Errorf("remove stale state: %w", err)
			}
		}
	}
	dir := filepath.Join(base, clusterID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create state dir: %w", err)
	}
	return dir, nil
}

// Storage returns the goka storage builder for dir: LevelDB, one directory per table partition, behind a
// write-behind cache of cacheBytes (see package store).
//
// goka opens LevelDB with its defaults, which keep no bloom filter: every payment of an account not yet in the
// table (most of them, with many accounts) then searches every level on disk for a key that is not there. A
// 10-bit bloom filter (about 1.25 MB per million keys) answers those misses from memory. The larger write
// buffer halves how often memtables are flushed and compacted; it is per partition, so it is kept modest.
func Storage(dir string, cacheBytes int64) goka.ProcessorOption {
	return goka.WithStorageBuilder(store.Builder(dir, store.Options{
		LevelDB: &opt.Options{
			Filter:             filter.NewBloomFilter(10),
			WriteBuffer:        8 * opt.MiB,
			BlockCacheCapacity: 8 * opt.MiB,
		},
		CacheBytes: cacheBytes,
	}))
}

// PanicFail aborts a goka callback with err so that its message is not committed. goka's Context.Fail panics only
// while the processor runs: once its context is done (a shutdown, a rebalance), Fail records the error and
// returns, the callback carries on, and the message is committed as if it had been processed. An alert whose
// delivery was interrupted by Ctrl-C would be lost that way; PanicFail therefore always panics, which goka
// recovers without committing.
func PanicFail(ctx goka.Context, err error) {
	ctx.Fail(err)
	panic(err)
}
