// Package store is the local storage of fraudpipe's goka tables: a write-behind cache in front of a journal per
// cached table partition, or of goka's LevelDB layout (one database per table partition, the changelog offset
// under "__offset") for tables larger than the cache.
//
// goka writes every table update to LevelDB as it happens, and then the changelog offset once Kafka acknowledges
// the update: two LevelDB writes, each a journal write(2), per payment. That was a fifth of the detector's CPU. A
// table's local storage is only a cache of its changelog, so it need not be written synchronously: this store
// keeps updates in memory and writes them in batches, each batch together with the newest acknowledged offset.
// Kafka Streams' record cache in front of RocksDB works the same way.
//
// Why that is safe: goka acknowledges offset O only after the update at O was Set, so a batch that carries
// offset O holds every update up to O. A crash loses at most the unwritten batches; local storage then holds
// the state as of an older offset, and goka replays the changelog from there (each update is the whole value of
// its key, so replaying is idempotent). The store is never ahead of the offset it records by more than goka's own
// storage is.
//
// Reads: while a partition's whole table fits a byte budget shared by the partitions of a builder, every value is
// kept in an arena mapped outside the Go heap (arena.go) from the moment it is loaded or set. Reads then never
// reach the disk, and a key that is not in memory does not exist (most payments come from accounts not seen for a
// while, and each such miss searched LevelDB's memtable and filters). Such a table is only read from disk when
// the partition opens, so it is written to an append-only journal (journal.go) rather than to LevelDB, whose
// sorting and compactions serve reads it no longer gets. Once the tables outgrow the budget, the partition that
// crosses it moves its table into LevelDB and stops caching, keeping only its unwritten values in memory; reads go
// to LevelDB, whose block cache keeps hot accounts. A partial cache would do worse than either: it must still ask
// LevelDB for every miss, and evicting from it costs as much as it saves.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// offsetKey is where goka's LevelDB storage keeps the changelog offset; the same key keeps existing state
// directories readable.
const offsetKey = "__offset"

// entryOverhead approximates what an entry costs beyond its key and value bytes (map slot, string and slice
// headers, allocation rounding), so that the budget is close to the memory really held.
const entryOverhead = 96

// Options tunes a store. The zero value is usable.
type Options struct {
	// LevelDB is passed to LevelDB as is.
	LevelDB *opt.Options
	// Builds gates the table builds of the builder's stores; nil: DefaultGate, shared by the process.
	Builds Gate
	// CacheBytes is the memory for whole tables over all partitions of the builder (about 300 bytes per
	// account with the shipped rules, up to a third of it superseded values the arena has not reclaimed
	// yet). 0 keeps only the values not yet written.
	CacheBytes int64
	// BatchKeys is how many pending updates trigger a write (default 2048); FlushInterval writes whatever is
	// pending at least this often (default 200 ms), so that the local storage trails the changelog only a
	// little when payments are few.
	BatchKeys     int
	FlushInterval time.Duration

	journalFloor int64 // journalFloor unless set, by tests
}

// Builder returns a goka storage builder that keeps partition p of topic in dir/topic.p (LevelDB) or, while the
// table is cached, in dir/topic.p.journal.
func Builder(dir string, o Options) storage.Builder {
	if o.BatchKeys <= 0 {
		o.BatchKeys = 2048
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.journalFloor <= 0 {
		o.journalFloor = journalFloor
	}
	budget := &budget{limit: o.CacheBytes}
	return func(topic string, partition int32) (storage.Storage, error) {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		s := newStore(path, o, budget)
		if err := s.openLevelDB(); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// budget is the cache memory shared by a builder's partitions.
type budget struct {
	limit int64
	used  atomic.Int64
}

func (b *budget) over() bool { return b.used.Load() > b.limit }

// item is what the store knows about a key: its value, or that it was deleted.
type item struct {
	value   []byte
	deleted bool
}

func (it item) size(key string) int64 { return int64(len(key) + len(it.value) + entryOverhead) }

// Store is one table partition's storage. It is safe for concurrent readers and one writer, as goka requires;
// the offset is set from the producer's callback goroutine.
type Store struct {
	path   string // LevelDB's directory; the journal's is path+".journal"
	opts   Options
	budget *budget
	db     *leveldb.DB
	files  io.Closer // the files under db, closed after it

	mu       sync.Mutex
	mem      map[string]item     // without cached, every key updated and not yet written
	dirty    map[string]struct{} // without cached, keys updated since the last write began
	pending  record              // with cached, the updates since the last write began, in order
	bytes    int64               // this partition's share of budget.used
	cached   bool                // cache holds the whole table, written or not: a miss means absent
	cache    *arena              // with cached, every value
	cacheSz  int64               // cache.size() when last counted in bytes
	offset   int64               // newest changelog offset set; hasOff says whether there is one
	hasOff   bool
	offDirty bool
	written  *sync.Cond // signalled after each write, for writers waiting on a full cache
	err      error      // the last failed write; reported by the next Set, SetOffset or Close

	flushMu sync.Mutex    // one write at a time: writes must reach storage in the order they were taken
	jn      *journal      // with cached, where batches are written; under flushMu, or mu when cached changes
	batch   leveldb.Batch // reused under flushMu: growing a fresh one was a tenth of the detector's allocations
	sealed  record        // reused under flushMu: the pending record being written
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func (o Options) gate() Gate {
	if o.Builds == nil {
		return DefaultGate
	}
	return o.Builds
}

func newStore(path string, o Options, b *budget) *Store {
	s := &Store{path: path, opts: o, budget: b, mem: map[string]item{}, dirty: map[string]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.written = sync.NewCond(&s.mu)
	s.pending.reset()
	s.sealed.reset()
	return s
}

func (s *Store) journalDir() string { return s.path + journalSuffix }

func (s *Store) openLevelDB() error {
	db, files, err := openLevelDB(s.path, s.opts.LevelDB, s.opts.gate())
	if err != nil {
		return err
	}
	s.db, s.files = db, files
	return nil
}

func (s *Store) closeLevelDB() error { return errors.Join(s.db.Close(), s.files.Close()) }

// clearLevelDB empties LevelDB once the journal holds the table: it is removed and created anew, which for a
// table of a million accounts is far cheaper than deleting them.
func (s *Store) clearLevelDB() error {
	it := s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})
	empty := !it.First()
	it.Release()
	if empty {
		return nil
	}
	if err := s.closeLevelDB(); err != nil {
		return fmt.Errorf("close leveldb: %w", err)
	}
	if err := os.RemoveAll(s.path); err != nil {
		return fmt.Errorf("clear leveldb: %w", err)
	}
	return s.openLevelDB()
}

// Open loads the table, and starts the writer. A journal, if there is one, is the table: LevelDB holds data next
// to it only if a crash came while the table moved from one to the other, and the journal is removed only once
// LevelDB holds all of it (uncache), and created only before LevelDB is cleared (below). Without a journal, the
// table is in LevelDB (goka's layout, or a table that outgrew the cache); if it fits the budget it is cached and
// moves to a journal.
func (s *Store) Open() error {
	s.cached, s.cache = true, newArena(arenaChunk)
	jn, found, err := openJournal(s.journalDir(), func(u update) {
		if u.deleted {
			s.cache.delete(string(u.key))
		} else {
			s.cache.put(string(u.key), u.value)
		}
	}, func(off int64) { s.offset, s.hasOff = off, true })
	if err != nil {
		return err
	}
	if found {
		s.jn = jn
		s.recount()
		if err := s.clearLevelDB(); err != nil {
			return err
		}
		if s.budget.over() {
			// Opened with a smaller budget than the table was cached with.
			if err := s.uncache(); err != nil {
				return err
			}
		}
		go s.writer()
		return nil
	}

	v, err := s.db.Get([]byte(offsetKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read offset: %w", err)
	default:
		if s.offset, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return fmt.Errorf("decode offset %q: %w", v, err)
		}
		s.hasOff = true
	}
	if err := s.load(); err != nil {
		return err
	}
	if s.cached {
		if s.jn, err = s.writeSnapshot(1); err != nil {
			return err
		}
		if err := s.clearLevelDB(); err != nil {
			return err
		}
	}
	go s.writer()
	return nil
}

// load caches the table stored in LevelDB if it fits the budget.
func (s *Store) load() error {
	it := s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})
	defer it.Release()
	for it.Next() {
		if string(it.Key()) == offsetKey {
			continue
		}
		s.cache.put(string(it.Key()), it.Value())
		s.recount()
		if s.budget.over() {
			s.dropCache()
			break
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("load local state: %w", err)
	}
	return nil
}

// arenaChunk is the cache's chunk size: the most one compaction step copies.
const arenaChunk = 1 << 20

// writeSnapshot writes journal seq holding the table and the offset set when it began (journal.go), encoding it
// a piece at a time under mu. Must hold flushMu (or be the only user of s), not mu.
func (s *Store) writeSnapshot(seq uint64) (*journal, error) {
	s.mu.Lock()
	off, hasOff := s.offset, s.hasOff
	// The walk must reach the arena's tail, which updates move on; should they outpace it, the rest is taken
	// under one hold of the lock.
	budget := 2*s.cache.len() + snapshotPiece
	s.mu.Unlock()
	var c cursor
	r := newRecord(snapshotRecord + 64<<10)
	put := func(key, value []byte) { putKey(&r, key, value) }
	return writeJournal(s.journalDir(), seq, func(write func([]byte) error) error {
		for done := false; !done; budget -= snapshotPiece {
			piece := snapshotPiece
			if budget <= 0 {
				piece = -1
			}
			s.mu.Lock()
			done = s.cache.walk(&c, piece, put)
			s.mu.Unlock()
			if done {
				return write(r.seal(off, hasOff))
			}
			if len(r.b) >= snapshotRecord {
				if err := write(r.seal(0, false)); err != nil {
					return err
				}
				r.reset()
			}
		}
		return nil
	})
}

// uncache stops caching the whole table once it outgrows the budget: the table moves from the arena into
// LevelDB, with the newest offset set (every update up to it is in the arena), and the journal is removed only
// after LevelDB synced it all. Must hold mu and flushMu (or be the only user of s). If the move fails, the table
// stays cached and in its journal.
func (s *Store) uncache() error {
	b := new(leveldb.Batch)
	var err error
	s.cache.each(func(key, value []byte) {
		if err != nil {
			return
		}
		b.Put(key, value)
		if b.Len() >= 16<<10 {
			err = s.db.Write(b, nil)
			b.Reset()
		}
	})
	if s.hasOff {
		b.Put([]byte(offsetKey), strconv.AppendInt(nil, s.offset, 10))
	}
	if err == nil {
		err = s.db.Write(b, &opt.WriteOptions{Sync: true})
	}
	if err == nil {
		err = errors.Join(s.jn.close(), removeJournals(s.journalDir()))
	}
	if err != nil {
		return fmt.Errorf("move local state to leveldb: %w", err)
	}
	s.jn = nil
	s.pending.reset() // in the arena, so now in LevelDB
	s.offDirty = false
	s.dropCache()
	return nil
}

// dropCache stops caching the whole table and returns the cache's memory.
func (s *Store) dropCache() {
	s.cache.free()
	s.cached, s.cache = false, nil
	s.add(-s.cacheSz)
	s.cacheSz = 0
}

// recount brings the cache's size into the budget.
func (s *Store) recount() {
	n := s.cache.size()
	s.add(n - s.cacheSz)
	s.cacheSz = n
}

func (s *Store) add(n int64) {
	s.bytes += n
	s.budget.used.Add(n)
}

// Has reports whether key has a value.
func (s *Store) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

// Get returns key's value, or nil if it has none. The returned slice must not be modified.
func (s *Store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	if s.cached {
		// Copied under the lock: the next put may unmap the chunk the arena's value lies in.
		v, _ := s.cache.get(key) // absent if not there
		v = bytes.Clone(v)
		s.mu.Unlock()
		return v, nil
	}
	e, ok := s.mem[key]
	s.mu.Unlock()
	switch {
	case ok && e.deleted:
		return nil, nil
	case ok:
		return e.value, nil
	}
	// A value leaves memory only after its batch is in LevelDB, so what is read here is at least as new as what
	// a reader saw in memory before.
	v, err := s.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leveldb get %q: %w", key, err)
	}
	return v, nil
}

// Set stores value under key; value is copied.
func (s *Store) Set(key string, value []byte) error { return s.update(key, value, false) }

// Delete removes key.
func (s *Store) Delete(key string) error { return s.update(key, nil, true) }

func (s *Store) update(key string, value []byte, deleted bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	// Values not yet written cannot be dropped: past a few batches' worth (a slow disk), wait for the writer.
	for s.unwritten() >= 8*s.opts.BatchKeys && s.err == nil {
		s.kickWriter()
		s.written.Wait()
	}
	if s.cached {
		// The arena holds the value from now on, and the update goes into the next batch as it happens: no copy
		// on the heap, no set of keys to track, nothing to look up when writing. (A key updated twice before a
		// write is written twice; with many accounts that is rare.) The writer checks the budget after a write.
		if deleted {
			s.cache.delete(key)
			s.pending.delete(key)
		} else {
			s.cache.put(key, value)
			s.pending.put(key, value)
		}
		s.recount()
	} else {
		s.remember(key, value, deleted)
	}
	if s.unwritten() >= s.opts.BatchKeys {
		s.kickWriter()
	}
	return nil
}

// unwritten is how many updates wait for the writer.
func (s *Store) unwritten() int {
	if s.cached {
		return s.pending.n
	}
	return len(s.dirty)
}

// remember keeps an update in memory until it is written, for a table that is not cached.
func (s *Store) remember(key string, value []byte, deleted bool) {
	if old, ok := s.mem[key]; ok {
		s.add(-old.size(key))
	}
	e := item{deleted: deleted}
	if !deleted {
		e.value = bytes.Clone(value)
	}
	s.mem[key] = e
	s.add(e.size(key))
	s.dirty[key] = struct{}{}
}

func (s *Store) kickWriter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// GetOffset returns the newest changelog offset set (or loaded), or def if there is none.
func (s *Store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasOff {
		return def, nil
	}
	return s.offset, nil
}

// SetOffset records the changelog offset the stored values are complete up to; it is written with the next
// batch, never before the values it covers.
func (s *Store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.offset, s.hasOff, s.offDirty = offset, true, true
	return nil
}

// MarkRecovered writes what recovery left pending, so that a crash right after does not replay it again.
func (s *Store) MarkRecovered() error { return s.Flush() }

// Iterator returns an iterator over a snapshot of the storage, pending updates included.
func (s *Store) Iterator() (storage.Iterator, error) { return s.IteratorWithRange(nil, nil) }

// IteratorWithRange iterates over [start, limit), or over the keys with prefix start if limit is empty; the
// offset key is left out, as goka's storage does.
func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	s.mu.Lock()
	if s.cached {
		// Copied in key order under the lock: nothing else holds the table in order, and iterating is rare
		// (goka's views; the detector does not).
		it := newSliceIterator(s.cache, start, limit)
		s.mu.Unlock()
		return it, nil
	}
	s.mu.Unlock()
	if err := s.Flush(); err != nil {
		return nil, err
	}
	return newIterator(s.db, start, limit), nil
}

// Flush writes the pending updates and offset now.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.write()
}

// write takes the pending updates and offset under the lock and writes them in one atomic batch outside it,
// so readers and the processor are not held up by the disk. Must hold flushMu.
func (s *Store) write() error {
	s.mu.Lock()
	if s.unwritten() == 0 && !s.offDirty {
		err := s.err
		s.mu.Unlock()
		return err
	}
	cached := s.cached
	var keys map[string]struct{}
	if cached {
		// The record was built as the updates came; the emptied one from the last write takes its place.
		s.sealed, s.pending = s.pending, s.sealed
		s.pending.reset()
	} else {
		b := &s.batch
		b.Reset()
		keys = s.dirty
		for k := range keys {
			if e := s.mem[k]; e.deleted {
				b.Delete([]byte(k))
			} else {
				b.Put([]byte(k), e.value)
			}
		}
		s.dirty = make(map[string]struct{}, len(keys))
		if s.offDirty {
			b.Put([]byte(offsetKey), strconv.AppendInt(nil, s.offset, 10))
		}
	}
	off, hasOff := s.offset, s.hasOff
	s.offDirty = false
	s.mu.Unlock()

	var err error
	if cached {
		err = s.jn.write(s.sealed.seal(off, hasOff))
	} else {
		err = s.db.Write(&s.batch, nil)
	}

	s.mu.Lock()
	compact, err := s.noteWrite(err, keys)
	s.mu.Unlock()
	if compact {
		return s.compactJournal()
	}
	return err
}

// noteWrite takes note of a write that ended with err, and reports whether the journal should be compacted.
// Must hold mu and flushMu.
func (s *Store) noteWrite(err error, keys map[string]struct{}) (compact bool, _ error) {
	defer s.written.Broadcast()
	if err != nil {
		// The batch is lost; the state in memory is still right, but local storage would miss it after a
		// restart. Refuse further updates, so goka stops the processor and rebuilds from the changelog.
		s.err = fmt.Errorf("write local state: %w", err)
		return false, s.err
	}
	// LevelDB has the batch now: without the cache, written values leave memory (keys is nil with the cache). A
	// key updated again meanwhile stays pending with its newer value.
	for k := range keys {
		if _, again := s.dirty[k]; again {
			continue
		}
		e := s.mem[k]
		s.add(-e.size(k))
		delete(s.mem, k)
	}
	if !s.cached {
		return false, nil
	}
	s.recount()
	if s.budget.over() {
		if err := s.uncache(); err != nil {
			s.err = err
			return false, err
		}
		return false, nil
	}
	return s.jn.size > max(s.opts.journalFloor, 2*s.cache.journalBytes()), nil
}

// compactJournal starts a new journal with a snapshot of the table, once the journal holds more superseded
// updates than live ones. Must hold flushMu, not mu.
func (s *Store) compactJournal() error {
	// Writing a snapshot is a table build: with LevelDB's, one at a time per two cores (gate.go).
	gate := s.opts.gate()
	gate.take()
	defer gate.release()
	jn, err := s.writeSnapshot(s.jn.seq + 1)
	if err == nil {
		err = s.jn.close()
		s.jn = jn
	}
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.err = fmt.Errorf("compact journal: %w", err)
		return s.err
	}
	return nil
}

// writer writes a batch when enough keys are pending, and at least every FlushInterval.
func (s *Store) writer() {
	defer close(s.done)
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
		s.Flush() // a failure is kept in s.err and reported to the next writer
	}
}

// Close writes what is pending and closes the journal and LevelDB.
func (s *Store) Close() error {
	close(s.stop)
	<-s.done
	err := s.Flush()
	s.flushMu.Lock()
	if s.jn != nil {
		err = errors.Join(err, s.jn.close())
		s.jn = nil
	}
	s.flushMu.Unlock()
	s.mu.Lock()
	s.budget.used.Add(-s.bytes)
	if s.cache != nil {
		s.cache.free()
	}
	s.bytes, s.mem, s.cache, s.cacheSz = 0, nil, nil, 0
	s.mu.Unlock()
	return errors.Join(err, s.closeLevelDB())
}
