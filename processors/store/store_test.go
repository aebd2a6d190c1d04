package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	st, err := Builder(dir, o)("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*Store)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	return s
}

// crash stops s the way kill -9 would: nothing pending is written.
func crash(t *testing.T, s *Store) {
	t.Helper()
	close(s.stop)
	<-s.done
	if s.jn != nil {
		if err := s.jn.close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.closeLevelDB(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *Store, key string) string {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return "<nil>"
	}
	return string(v)
}

func TestUpdatesVisibleAtOnceAndDurableAfterClose(t *testing.T) {
	for _, cache := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprint("cache ", cache), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{CacheBytes: cache, FlushInterval: time.Hour})
			if err := s.Set("a", []byte("1")); err != nil {
				t.Fatal(err)
			}
			buf := []byte("2")
			s.Set("b", buf)
			buf[0] = 'X' // the store keeps its own copy
			s.Set("c", []byte("3"))
			s.Delete("c")
			s.SetOffset(41)
			if got := get(t, s, "b"); got != "2" {
				t.Fatalf("b = %s before any write", got)
			}
			if got := get(t, s, "c"); got != "<nil>" {
				t.Fatalf("deleted c = %s", got)
			}
			if ok, _ := s.Has("a"); !ok {
				t.Fatal("Has(a) = false")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open(t, dir, Options{CacheBytes: cache})
			defer s.Close()
			for k, want := range map[string]string{"a": "1", "b": "2", "c": "<nil>", "missing": "<nil>"} {
				if got := get(t, s, k); got != want {
					t.Errorf("after reopen %s = %s, want %s", k, got, want)
				}
			}
			if off, _ := s.GetOffset(-2); off != 41 {
				t.Errorf("offset after reopen = %d, want 41", off)
			}
		})
	}
}

// A crash loses only whole batches, and the offset on disk never covers an update that is not. Cached or not:
// the cached store writes its batches from the arena.
func TestCrashLeavesOffsetAndValuesConsistent(t *testing.T) {
	for _, cache := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprint("cache ", cache), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{CacheBytes: cache, FlushInterval: time.Hour})
			if off, _ := s.GetOffset(-2); off != -2 {
				t.Fatalf("fresh store offset = %d, want the default", off)
			}
			s.Set("acct", []byte("v1"))
			s.Set("gone", []byte("g1"))
			s.SetOffset(10)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			s.Set("acct", []byte("v2"))
			s.Set("other", []byte("o1"))
			s.Delete("gone")
			s.SetOffset(12)
			crash(t, s)

			s = open(t, dir, Options{CacheBytes: cache})
			defer s.Close()
			if off, _ := s.GetOffset(-2); off != 10 {
				t.Fatalf("offset after crash = %d, want 10 (the last written batch)", off)
			}
			for k, want := range map[string]string{"acct": "v1", "gone": "g1", "other": "<nil>"} {
				if got := get(t, s, k); got != want {
					t.Errorf("%s after crash = %s, want %s, as of offset 10", k, got, want)
				}
			}
		})
	}
}

// A table that outgrows the cache moves from the arena into LevelDB whole, updates not yet written included
// (deletions too), with the newest offset; readers see no difference, and its journal is removed.
func TestPendingUpdatesSurviveLeavingTheCache(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{CacheBytes: 1 << 20, FlushInterval: time.Hour})
	s.Set("written", []byte("w1"))
	s.Set("deleted", []byte("d1"))
	s.SetOffset(1)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Set("pending", []byte("p1"))
	s.Set("written", []byte("w2"))
	s.Delete("deleted")
	s.SetOffset(4)
	s.flushMu.Lock()
	s.mu.Lock()
	err := s.uncache() // as the writer does once the budget is exceeded
	s.mu.Unlock()
	s.flushMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"written": "w2", "pending": "p1", "deleted": "<nil>"}
	for k, w := range want {
		if got := get(t, s, k); got != w {
			t.Errorf("%s = %s after leaving the cache, want %s", k, got, w)
		}
	}
	if len(s.mem) != 0 || s.budget.used.Load() != 0 || s.bytes != 0 {
		t.Errorf("%d values in memory, %d bytes counted, %d in the budget, want none", len(s.mem), s.bytes, s.budget.used.Load())
	}
	if seqs, err := journals(s.journalDir()); err != nil || len(seqs) != 0 {
		t.Errorf("journals %v (%v) left after the move", seqs, err)
	}
	crash(t, s) // nothing pending: the move wrote it all
	s = open(t, dir, Options{})
	defer s.Close()
	for k, w := range want {
		if got := get(t, s, k); got != w {
			t.Errorf("%s = %s in LevelDB, want %s", k, got, w)
		}
	}
	if off, _ := s.GetOffset(-2); off != 4 {
		t.Errorf("offset in LevelDB = %d, want 4", off)
	}
}

func TestWritesInBatchesByCountAndInterval(t *testing.T) {
	s := open(t, t.TempDir(), Options{BatchKeys: 10, FlushInterval: 20 * time.Millisecond})
	defer s.Close()
	for i := range 25 {
		s.Set(fmt.Sprint("k", i), []byte("v"))
	}
	s.SetOffset(25)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.db.Get([]byte(offsetKey), nil)
		if err == nil && string(v) == "25" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offset 25 not written by the interval: %q %v", v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 25 {
		if _, err := s.db.Get([]byte(fmt.Sprint("k", i)), nil); err != nil {
			t.Fatalf("k%d not in leveldb with the offset: %v", i, err)
		}
	}
}

func TestTableOutgrowingTheCacheIsReadFromLevelDB(t *testing.T) {
	const keys, budget = 5000, 64 << 10
	dir := t.TempDir()
	s := open(t, dir, Options{CacheBytes: budget, BatchKeys: 100, FlushInterval: time.Hour})
	for i := range 50 {
		s.Set(fmt.Sprint("acct-", i), []byte(fmt.Sprint("value-", i)))
	}
	s.Flush()
	if !s.cached || s.cache.len() != 50 || len(s.mem) != 0 {
		t.Fatalf("a table within the budget: cached %v with %d values in the cache and %d pending, want all 50 cached",
			s.cached, s.cache.len(), len(s.mem))
	}
	for i := 50; i < keys; i++ {
		s.Set(fmt.Sprint("acct-", i), []byte(fmt.Sprint("value-", i)))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.cached || len(s.mem) != 0 || s.budget.used.Load() != 0 {
		t.Fatalf("past the budget: cached %v, %d values and %d bytes in memory after the write, want none",
			s.cached, len(s.mem), s.budget.used.Load())
	}
	for i := range keys {
		if got, want := get(t, s, fmt.Sprint("acct-", i)), fmt.Sprint("value-", i); got != want {
			t.Fatalf("acct-%d = %s, want %s", i, got, want)
		}
	}
	if len(s.mem) != 0 {
		t.Fatalf("reads filled memory with %d values", len(s.mem))
	}
	s.Close()

	// Reopened with room for the table, it is cached again; with too little, it is read from LevelDB.
	for _, c := range []struct {
		budget int64
		cached bool
	}{{1 << 20, true}, {budget, false}} {
		s := open(t, dir, Options{CacheBytes: c.budget})
		if s.cached != c.cached {
			t.Errorf("budget %d: cached = %v, want %v", c.budget, s.cached, c.cached)
		}
		if got := get(t, s, "acct-4999"); got != "value-4999" {
			t.Errorf("budget %d: acct-4999 = %s", c.budget, got)
		}
		if got := get(t, s, "acct-5000"); got != "<nil>" {
			t.Errorf("budget %d: acct-5000 = %s", c.budget, got)
		}
		s.Close()
	}
}

func TestIteratorSeesPendingUpdatesWithoutOffset(t *testing.T) {
	s := open(t, t.TempDir(), Options{FlushInterval: time.Hour})
	defer s.Close()
	s.Set("b", []byte("2"))
	s.Set("a", []byte("1"))
	s.Set("gone", []byte("x"))
	s.Delete("gone")
	s.SetOffset(3)
	it, err := s.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Release()
	var got []string
	for it.Next() {
		v, _ := it.Value()
		got = append(got, string(it.Key())+"="+string(v))
	}
	if fmt.Sprint(got) != "[a=1 b=2]" {
		t.Fatalf("iterated %v, want [a=1 b=2]", got)
	}
}

// Readers racing the writer, the background writes and evictions never see a value older than one they saw.
func TestConcurrentReadersNeverSeeStaleValues(t *testing.T) {
	s := open(t, t.TempDir(), Options{CacheBytes: 4 << 10, BatchKeys: 16, FlushInterval: time.Millisecond})
	defer s.Close()
	const keys, rounds = 50, 400
	stopReaders := startReaders(t, s, 3, keys)
	v := make([]byte, 8)
	for n := uint64(1); n <= rounds; n++ {
		for k := range keys {
			binary.BigEndian.PutUint64(v, n)
			if err := s.Set(fmt.Sprint("k", k), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopReaders()
	for k := range keys {
		if got := binary.BigEndian.Uint64([]byte(get(t, s, fmt.Sprint("k", k)))); got != rounds {
			t.Fatalf("k%d = %d after the last round, want %d", k, got, rounds)
		}
	}
}

// The arena unmaps the chunks it compacts away: a value the store returned must stay readable however many
// updates follow, including while the writer compacts the arena under a reader.
func TestValuesReadStayValidWhileTheCacheCompacts(t *testing.T) {
	s := open(t, t.TempDir(), Options{CacheBytes: 64 << 20, BatchKeys: 64, FlushInterval: time.Hour})
	defer s.Close()
	s.Set("a", []byte("first"))
	s.Flush()
	first, err := s.Get("a")
	if err != nil || string(first) != "first" {
		t.Fatalf("a = %q, %v", first, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			v, err := s.Get("a")
			if err != nil || len(v) < 5 || (string(v[:5]) != "first" && string(v[:5]) != "next ") {
				t.Errorf("a = %q, %v", v, err)
				return
			}
		}
	}()
	dropped := func() uint32 { s.mu.Lock(); defer s.mu.Unlock(); return s.cache.dropped }
	value := make([]byte, 1024)
	for i := 0; dropped() < 8; i++ {
		if i > 100_000 {
			t.Fatalf("%d updates dropped only %d chunks", i, dropped())
		}
		s.Set(fmt.Sprint("k", i%200), value)
		s.Set("a", fmt.Appendf(nil, "next %d", i))
		if i%64 == 0 {
			s.Flush()
		}
	}
	close(stop)
	wg.Wait()
	if string(first) != "first" {
		t.Fatalf("a value read before the updates now says %q", first)
	}
}

// startReaders starts readers of keys k0 … k(keys-1), whose values are big-endian counters: each reader fails the
// test if a key's counter ever goes back. The returned func stops them and waits.
func startReaders(t *testing.T, s *Store, readers, keys int) (stop func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := range readers {
		wg.Go(func() {
			seen := map[int]uint64{}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := (i*7 + r) % keys
				v, err := s.Get(fmt.Sprint("k", k))
				if err != nil {
					t.Error(err)
					return
				}
				if v == nil {
					continue
				}
				n := binary.BigEndian.Uint64(v)
				if n < seen[k] {
					t.Errorf("k%d went back from %d to %d", k, seen[k], n)
					return
				}
				seen[k] = n
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}
