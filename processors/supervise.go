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
	"strings"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"

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

	current atomic.Pointer[goka.Processor]
}

// Current returns the running processor, or nil between runs.
func (s *Supervisor) Current() *goka.Processor { return s.current.Load() }

// Run blocks until ctx is done. A failing processor is rebuilt with capped exponential backoff.
func (s *Supervisor) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && strings.Contains(err.Error(), "our cache has one") && s.Storage != "" {
			s.Log.Warn("local storage is ahead of the changelog; rebuilding it from kafka", "processor", s.Name, "dir", s.Storage)
			if rmErr := os.RemoveAll(s.Storage); rmErr != nil {
				return fmt.Errorf("%s: wipe storage: %w", s.Name, rmErr)
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		s.Log.Error("processor stopped; restarting", "processor", s.Name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (s *Supervisor) runOnce(ctx context.Context) error {
	p, err := s.Build()
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	s.current.Store(p)
	defer s.current.Store(nil)
	err = p.Run(ctx)
	if err == nil && ctx.Err() == nil {
		err = errors.New("stopped without error")
	}
	return err
}

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

// Fail aborts a goka callback with err so that its message is not committed. goka's Context.Fail panics only
// while the processor runs: once its context is done (a shutdown, a rebalance), Fail records the error and
// returns, the callback carries on, and the message is committed as if it had been processed. An alert whose
// delivery was interrupted by Ctrl-C would be lost that way; Fail therefore always panics, which goka
// recovers without committing.
func Fail(ctx goka.Context, err error) {
	ctx.Fail(err)
	panic(err)
}
