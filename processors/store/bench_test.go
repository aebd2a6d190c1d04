package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// BenchmarkPaymentUpdate is one payment's work on local storage, as goka does it: read the account's state, write
// the new state, then record the acknowledged changelog offset. It compares goka's LevelDB storage with this
// store, over 200,000 accounts drawn in a fixed pseudo-random order.
func BenchmarkPaymentUpdate(b *testing.B) {
	const accounts = 200_000
	ldb := &opt.Options{Filter: filter.NewBloomFilter(10), WriteBuffer: 8 * opt.MiB, BlockCacheCapacity: 8 * opt.MiB}
	value := make([]byte, 160)
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct_%06d", (i*7919)%accounts)
	}
	for _, c := range []struct {
		name  string
		build storage.Builder
	}{
		{"goka-leveldb", storage.BuilderWithOptions(b.TempDir(), ldb)},
		{"store-uncached", Builder(b.TempDir(), Options{LevelDB: ldb})},
		{"store-cached", Builder(b.TempDir(), Options{LevelDB: ldb, CacheBytes: 256 << 20})},
	} {
		b.Run(c.name, func(b *testing.B) {
			st, err := c.build("table", 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Open(); err != nil {
				b.Fatal(err)
			}
			if err := st.MarkRecovered(); err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := keys[i%accounts]
				if _, err := st.Get(k); err != nil {
					b.Fatal(err)
				}
				if err := st.Set(k, value); err != nil {
					b.Fatal(err)
				}
				if err := st.SetOffset(int64(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJournalSnapshot is one compaction of a cached partition's journal in the default bench run (182,000
// accounts of 141 bytes): reported as the longest the partition's lock is held for one piece of the snapshot
// (held-ms) and the whole compaction, written and synced (total-ms).
func BenchmarkJournalSnapshot(b *testing.B) {
	const accounts = 182_000
	s := open(b, b.TempDir(), Options{CacheBytes: 1 << 30, FlushInterval: time.Hour})
	defer s.Close()
	value := make([]byte, 141)
	for i := range accounts {
		s.Set(fmt.Sprintf("acct_%07d", i), value)
	}
	s.SetOffset(accounts)
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	var held, total time.Duration
	r := newRecord(snapshotRecord)
	for b.Loop() {
		// The pieces as writeSnapshot takes them, then the whole compaction.
		var c cursor
		for done := false; !done; {
			s.mu.Lock()
			start := time.Now()
			done = s.cache.walk(&c, snapshotPiece, func(k, v []byte) { putKey(&r, k, v) })
			held = max(held, time.Since(start))
			s.mu.Unlock()
			r.reset()
		}
		s.flushMu.Lock()
		start := time.Now()
		err := s.compactJournal()
		total += time.Since(start)
		s.flushMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(held.Microseconds())/1e3, "held-ms")
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "total-ms")
}
