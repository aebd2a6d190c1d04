package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
)

const cached = 64 << 20 // a budget every table of these tests fits

// journalFile is the path of s's one journal; the test fails if there is not exactly one.
func journalFile(t *testing.T, s *Store) string {
	t.Helper()
	seqs, err := journals(s.journalDir())
	if err != nil || len(seqs) != 1 {
		t.Fatalf("journals %v (%v), want exactly one", seqs, err)
	}
	return journalPath(s.journalDir(), seqs[0])
}

func levelDBKeys(t *testing.T, s *Store) int {
	t.Helper()
	it := s.db.NewIterator(nil, nil)
	defer it.Release()
	n := 0
	for it.Next() {
		n++
	}
	return n
}

func checkValues(t *testing.T, s *Store, when string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got := get(t, s, k); got != w {
			t.Errorf("%s: %s = %s, want %s", when, k, got, w)
		}
	}
}

// A cached table lives in its journal, not in LevelDB; a crash that tears the last record loses only that batch,
// the offset goes back with it, and the next batch is appended after the last whole record.
func TestTornJournalTailIsCut(t *testing.T) {
	for name, tear := range map[string]func(path string, size int64) error{
		"cut short": func(path string, size int64) error { return os.Truncate(path, size-3) },
		"zeros after": func(path string, size int64) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 100))
			return err
		},
		"bit flipped": func(path string, size int64) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b[size-2] ^= 0x10
			return os.WriteFile(path, b, 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{CacheBytes: cached, FlushInterval: time.Hour})
			s.Set("acct", []byte("v1"))
			s.Set("gone", []byte("g1"))
			s.SetOffset(10)
			s.Flush()
			s.Set("acct", []byte("v2"))
			s.Delete("gone")
			s.Set("new", []byte("n1"))
			s.SetOffset(12)
			s.Flush()
			if n := levelDBKeys(t, s); n != 0 {
				t.Fatalf("LevelDB holds %d keys of a cached table", n)
			}
			path := journalFile(t, s)
			crash(t, s)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := tear(path, fi.Size()); err != nil {
				t.Fatal(err)
			}

			s = open(t, dir, Options{CacheBytes: cached, FlushInterval: time.Hour})
			wantOff, want := int64(10), map[string]string{"acct": "v1", "gone": "g1", "new": "<nil>"}
			if name == "zeros after" { // nothing torn: zeros are not a record
				wantOff, want = 12, map[string]string{"acct": "v2", "gone": "<nil>", "new": "n1"}
			}
			if off, _ := s.GetOffset(-2); off != wantOff {
				t.Fatalf("offset after reopening = %d, want %d", off, wantOff)
			}
			checkValues(t, s, "after reopening", want)
			s.Set("later", []byte("l1"))
			s.SetOffset(20)
			s.Flush()
			crash(t, s)

			s = open(t, dir, Options{CacheBytes: cached})
			defer s.Close()
			want["later"] = "l1"
			checkValues(t, s, "after the next batch", want)
			if off, _ := s.GetOffset(-2); off != 20 {
				t.Fatalf("offset after the next batch = %d, want 20", off)
			}
		})
	}
}

// The journal is compacted into a snapshot once it grows past twice the table, while readers and the writer go
// on; the table and offset survive a crash at any point, and only one journal is left.
func TestJournalCompactsUnderLoad(t *testing.T) {
	dir := t.TempDir()
	o := Options{CacheBytes: cached, BatchKeys: 32, FlushInterval: time.Millisecond, journalFloor: 16 << 10}
	s := open(t, dir, o)
	const keys, rounds = 200, 300
	stopReaders := startReaders(t, s, 2, keys)
	v := make([]byte, 40)
	firstSeq := s.jn.seq
	for n := uint64(1); n <= rounds; n++ {
		for k := range keys {
			binary.BigEndian.PutUint64(v, n)
			if err := s.Set(fmt.Sprint("k", k), v); err != nil {
				t.Fatal(err)
			}
		}
		if n%3 == 0 {
			s.Delete("k0")
		}
		s.SetOffset(int64(n))
	}
	stopReaders()
	s.Flush()
	s.flushMu.Lock()
	seq, size := s.jn.seq, s.jn.size
	s.flushMu.Unlock()
	// 300 rounds of 200 updates of about 50 bytes are 3 MB; the table is 10 KB.
	if seq < firstSeq+10 || size > 64<<10 {
		t.Fatalf("journal %d of %d bytes after 60,000 updates (the first was %d): not compacted", seq, size, firstSeq)
	}
	journalFile(t, s)
	crash(t, s)

	s = open(t, dir, Options{CacheBytes: cached})
	defer s.Close()
	if off, _ := s.GetOffset(-2); off != rounds {
		t.Fatalf("offset after reopening = %d, want %d", off, rounds)
	}
	if got := get(t, s, "k0"); got != "<nil>" {
		t.Errorf("deleted k0 = %q after reopening", got)
	}
	for k := 1; k < keys; k++ {
		if got := binary.BigEndian.Uint64([]byte(get(t, s, fmt.Sprint("k", k)))); got != rounds {
			t.Fatalf("k%d = %d after reopening, want %d", k, got, rounds)
		}
	}
}

// A snapshot becomes the journal by its rename: a crash before it leaves a temporary file, which is ignored and
// removed, and the journal before it in force.
func TestUnfinishedSnapshotIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{CacheBytes: cached, FlushInterval: time.Hour})
	s.Set("acct", []byte("v1"))
	s.SetOffset(7)
	s.Flush()
	path := journalFile(t, s)
	crash(t, s)
	tmp := journalPath(filepath.Dir(path), 99) + tmpSuffix
	var r record
	r.reset()
	r.put("acct", []byte("from an unfinished snapshot"))
	if err := os.WriteFile(tmp, r.seal(9, true)[:20], 0o644); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, Options{CacheBytes: cached})
	defer s.Close()
	checkValues(t, s, "after reopening", map[string]string{"acct": "v1"})
	if off, _ := s.GetOffset(-2); off != 7 {
		t.Errorf("offset = %d, want 7", off)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("unfinished snapshot not removed: %v", err)
	}
	journalFile(t, s)
}

// State written by goka's own LevelDB storage (and by earlier releases) is read, and moves into a journal when
// the table fits the cache: LevelDB is emptied, and the journal alone holds the table from then on.
func TestLevelDBStateMovesIntoTheJournal(t *testing.T) {
	dir := t.TempDir()
	old, err := storage.BuilderWithOptions(dir, nil)("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Open(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		old.Set(fmt.Sprint("acct-", i), []byte(fmt.Sprint("value-", i)))
	}
	old.SetOffset(99)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir, Options{CacheBytes: cached})
	if !s.cached {
		t.Fatal("a table of 100 accounts not cached")
	}
	if n := levelDBKeys(t, s); n != 0 {
		t.Errorf("LevelDB still holds %d keys after the move", n)
	}
	journalFile(t, s)
	crash(t, s)
	for _, budget := range []int64{cached, 0} {
		s = open(t, dir, Options{CacheBytes: budget})
		if off, _ := s.GetOffset(-2); off != 99 {
			t.Errorf("budget %d: offset = %d, want 99", budget, off)
		}
		checkValues(t, s, fmt.Sprint("budget ", budget), map[string]string{"acct-0": "value-0", "acct-99": "value-99", "acct-100": "<nil>"})
		if s.cached != (budget > 0) {
			t.Errorf("budget %d: cached = %v", budget, s.cached)
		}
		s.Close()
	}
}

// The journal is removed only after LevelDB holds the whole table; a crash between the two leaves both, and the
// journal is the table: what LevelDB holds is cleared.
func TestJournalWinsOverLevelDBLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{CacheBytes: cached, FlushInterval: time.Hour})
	s.Set("acct", []byte("journal"))
	s.SetOffset(5)
	s.Flush()
	crash(t, s)
	db, err := leveldb.OpenFile(filepath.Join(dir, "table.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Put([]byte("acct"), []byte("leveldb"), nil)
	db.Put([]byte("stray"), []byte("x"), nil)
	db.Put([]byte(offsetKey), []byte("8"), nil)
	db.Close()

	s = open(t, dir, Options{CacheBytes: cached})
	defer s.Close()
	checkValues(t, s, "after reopening", map[string]string{"acct": "journal", "stray": "<nil>"})
	if off, _ := s.GetOffset(-2); off != 5 {
		t.Errorf("offset = %d, want the journal's 5", off)
	}
	if n := levelDBKeys(t, s); n != 0 {
		t.Errorf("LevelDB still holds %d keys", n)
	}
}

// Iterating a cached table walks it in key order, pending updates included, within the range asked for.
func TestIteratorOverCachedAndUncachedTables(t *testing.T) {
	for _, budget := range []int64{0, cached} {
		t.Run(fmt.Sprint("cache ", budget), func(t *testing.T) {
			s := open(t, t.TempDir(), Options{CacheBytes: budget, FlushInterval: time.Hour})
			defer s.Close()
			for _, k := range []string{"b2", "a1", "b1", "c1", "gone"} {
				s.Set(k, []byte("v"+k))
			}
			s.Flush()
			s.Delete("gone")
			s.Set("b3", []byte("vb3"))
			for _, c := range []struct {
				start, limit string
				want         string
			}{
				{"", "", "[a1 b1 b2 b3 c1]"},
				{"b", "", "[b1 b2 b3]"},
				{"a2", "c", "[b1 b2 b3]"},
			} {
				it, err := s.IteratorWithRange([]byte(c.start), []byte(c.limit))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for it.Next() {
					if v, _ := it.Value(); string(v) != "v"+string(it.Key()) {
						t.Errorf("%s = %s", it.Key(), v)
					}
					got = append(got, string(it.Key()))
				}
				if fmt.Sprint(got) != c.want {
					t.Errorf("range [%q, %q): %v, want %s", c.start, c.limit, got, c.want)
				}
				if !it.Seek([]byte("b15")) || string(it.Key()) != "b2" {
					t.Errorf("range [%q, %q): Seek(b15) at %q, want b2", c.start, c.limit, it.Key())
				}
				it.Release()
			}
		})
	}
}
