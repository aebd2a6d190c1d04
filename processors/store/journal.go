package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A cached table is persisted in a journal instead of LevelDB. The arena holds the whole table in memory, so its
// local storage is only read when the partition opens; LevelDB's sorted memtable and compactions bought nothing
// for it and cost a noticeable share of the detector's CPU (docs/performance.md). The journal is a file of
// records appended in the order the batches were taken; opening replays it into the arena.
//
// Each record is an atomic batch: a header (payload length, CRC-32C of the payload), then the payload: a flags
// byte (bit 0: the record carries a changelog offset), the offset (8 bytes, little endian), and the updates, each
// an op byte (opPut, opDelete), the key's length as a uvarint, the key, and for a put the value's length and the
// value. A record carrying offset O holds, with the records before it, every update up to O, as the LevelDB
// batches did. A crash can leave a torn record at the tail; replay stops at the first record whose length or CRC
// does not check out and cuts the file there, so the table is as of the last whole batch.
//
// The journal grows by every update. When it exceeds twice the live data (and a floor), the writer starts a
// new journal with a snapshot of the arena, written to a temporary file and renamed: the rename is the
// switch, and the old journal is removed after it. A snapshot taken while updates continue may hold some values
// newer than its offset; replaying the changelog from the offset rewrites them with the same values, as goka's
// recovery always does.
const (
	journalSuffix = ".journal"
	tmpSuffix     = ".tmp"

	headerLen = 8     // payload length, CRC-32C
	prefixLen = 1 + 8 // flags, offset

	opPut    = 1
	opDelete = 2

	flagOffset = 1

	// maxRecord bounds a record's payload on replay, so that a corrupt length is a torn tail and not a huge
	// allocation. Batches are a few hundred KiB; snapshots are written in records of about snapshotRecord.
	maxRecord      = 256 << 20
	snapshotRecord = 1 << 20

	// snapshotPiece is how many entries a snapshot encodes per hold of the partition's lock: about half a
	// millisecond. Encoding a partition of 182,000 accounts at once held it for 40 ms.
	snapshotPiece = 2048

	// journalFloor is the size below which a journal is never compacted: small tables would otherwise snapshot
	// every few batches.
	journalFloor = 8 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is a journal record being built: header and prefix reserved at the start, updates appended.
type record struct {
	b []byte
	n int // updates
}

func newRecord(capacity int) record {
	return record{b: make([]byte, headerLen+prefixLen, max(capacity, headerLen+prefixLen))}
}

func (r *record) reset() {
	if cap(r.b) < headerLen+prefixLen {
		r.b = make([]byte, headerLen+prefixLen, 64<<10)
	}
	r.b, r.n = r.b[:headerLen+prefixLen], 0
}

func (r *record) put(key string, value []byte) { putKey(r, key, value) }

// putKey appends a put; the snapshot's keys come from the arena as bytes, the updates' as strings.
func putKey[K string | []byte](r *record, key K, value []byte) {
	r.b = append(r.b, opPut)
	r.b = binary.AppendUvarint(r.b, uint64(len(key)))
	r.b = append(r.b, key...)
	r.b = binary.AppendUvarint(r.b, uint64(len(value)))
	r.b = append(r.b, value...)
	r.n++
}

func (r *record) delete(key string) {
	r.b = append(r.b, opDelete)
	r.b = binary.AppendUvarint(r.b, uint64(len(key)))
	r.b = append(r.b, key...)
	r.n++
}

// seal fills in the header and prefix and returns the bytes to write.
func (r *record) seal(offset int64, hasOffset bool) []byte {
	p := r.b[headerLen:]
	p[0] = 0
	if hasOffset {
		p[0] = flagOffset
	}
	binary.LittleEndian.PutUint64(p[1:], uint64(offset))
	binary.LittleEndian.PutUint32(r.b, uint32(len(p)))
	binary.LittleEndian.PutUint32(r.b[4:], crc32.Checksum(p, crcTable))
	return r.b
}

// journal is the file a cached table's batches are appended to.
type journal struct {
	dir  string
	seq  uint64 // the file's number; a snapshot starts seq+1
	f    *os.File
	size int64
}

func journalPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", seq, journalSuffix))
}

// journals lists the journals in dir, oldest first; a missing dir has none.
func journals(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list journals: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), journalSuffix)
		if !ok {
			continue
		}
		if seq, err := strconv.ParseUint(name, 16, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// update is one update read from a journal; value aliases the record being replayed.
type update struct {
	key     []byte
	value   []byte
	deleted bool
}

// openJournal replays the newest journal in dir through apply (the updates of each whole record, then its
// offset, if it carries one), cuts a torn tail, removes older journals and unfinished snapshots, and opens the
// journal for appending. found is false, and nothing is opened, if dir holds no journal.
func openJournal(dir string, apply func(update), offset func(int64)) (j *journal, found bool, err error) {
	seqs, err := journals(dir)
	if err != nil || len(seqs) == 0 {
		return nil, false, err
	}
	seq := seqs[len(seqs)-1]
	f, err := os.OpenFile(journalPath(dir, seq), os.O_RDWR, 0)
	if err != nil {
		return nil, true, fmt.Errorf("open journal: %w", err)
	}
	size, err := replay(f, apply, offset)
	if err == nil {
		// A torn tail is cut so that the next record follows the last whole one.
		err = f.Truncate(size)
	}
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, true, fmt.Errorf("replay journal %s: %w", f.Name(), err)
	}
	j = &journal{dir: dir, seq: seq, f: f, size: size}
	return j, true, j.removeOthers()
}

// replay applies the whole records of r and returns the length they take.
func replay(r io.Reader, apply func(update), offset func(int64)) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var (
		head [headerLen]byte
		p    []byte
		size int64
	)
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return size, nil
			}
			return 0, err
		}
		n := binary.LittleEndian.Uint32(head[:])
		if n < prefixLen || n > maxRecord {
			return size, nil
		}
		if cap(p) < int(n) {
			p = make([]byte, n)
		}
		p = p[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return size, nil
			}
			return 0, err
		}
		if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
			return size, nil
		}
		ups, ok := decodeUpdates(p[prefixLen:])
		if !ok {
			// The CRC matched bytes this package did not write: not a torn tail, so not something to cut.
			return 0, fmt.Errorf("malformed record at byte %d", size)
		}
		for _, u := range ups {
			apply(u)
		}
		if p[0]&flagOffset != 0 {
			offset(int64(binary.LittleEndian.Uint64(p[1:])))
		}
		size += headerLen + int64(n)
	}
}

// decodeUpdates splits a record's updates; ok is false if they do not parse.
func decodeUpdates(b []byte) (ups []update, ok bool) {
	field := func() ([]byte, bool) {
		l, i := binary.Uvarint(b)
		if i <= 0 || l > uint64(len(b)-i) {
			return nil, false
		}
		f := b[i : i+int(l)]
		b = b[i+int(l):]
		return f, true
	}
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		k, ok := field()
		if !ok {
			return nil, false
		}
		switch op {
		case opPut:
			v, ok := field()
			if !ok {
				return nil, false
			}
			ups = append(ups, update{key: k, value: v})
		case opDelete:
			ups = append(ups, update{key: k, deleted: true})
		default:
			return nil, false
		}
	}
	return ups, true
}

// writeJournal starts journal seq in dir with the records fill writes, and makes it the journal only once it is
// complete: it is written under a temporary name and renamed. Older journals are removed after.
//
// The file is not synced before the rename, as the batches appended to it are not (nor were goka's LevelDB
// writes): a process crash loses nothing the page cache holds, and after a machine crash a snapshot whose data
// did not reach the disk replays as a table cut short at its first bad record, with no offset, so goka rebuilds
// it from the whole changelog. Syncing some 30 MB per snapshot would make every other sync on the disk wait
// behind it, the broker's included.
func writeJournal(dir string, seq uint64, fill func(write func([]byte) error) error) (*journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create journal dir: %w", err)
	}
	path := journalPath(dir, seq)
	f, err := os.OpenFile(path+tmpSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	j := &journal{dir: dir, seq: seq, f: f}
	err = fill(j.write)
	if err == nil {
		err = os.Rename(path+tmpSuffix, path)
	}
	if err != nil {
		f.Close()
		os.Remove(path + tmpSuffix)
		return nil, fmt.Errorf("write journal %s: %w", path, err)
	}
	return j, j.removeOthers()
}

// write appends sealed records.
func (j *journal) write(b []byte) error {
	n, err := j.f.Write(b)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("append to journal %s: %w", j.f.Name(), err)
	}
	return nil
}

// removeOthers removes every journal but this one, and unfinished snapshots.
func (j *journal) removeOthers() error {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("list journals: %w", err)
	}
	mine := filepath.Base(journalPath(j.dir, j.seq))
	for _, e := range entries {
		if e.Name() == mine || !(strings.HasSuffix(e.Name(), journalSuffix) || strings.HasSuffix(e.Name(), tmpSuffix)) {
			continue
		}
		if err := os.Remove(filepath.Join(j.dir, e.Name())); err != nil {
			return fmt.Errorf("remove old journal: %w", err)
		}
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// removeJournals deletes dir and the journals in it, once their table is stored elsewhere.
func removeJournals(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove journals: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
