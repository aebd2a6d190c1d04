package store

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// arena holds a cached table in a form the garbage collector does not scan. A map from account id to []byte
// holds two pointers per account; with a million accounts cached, each collection would mark them all, holding
// a core for a noticeable time while the alerts of those moments wait. Here the
// entries live in large byte chunks and the index maps a 64-bit hash of the key to the entry's position: neither
// holds a pointer per account.
//
// Entries are appended: a key's new value goes to the tail and its old entry becomes garbage. When garbage
// exceeds half the live data, the oldest chunk's live entries move to the tail and the chunk is dropped, a chunk
// or two per update, so no step copies much. Two keys with the same hash are told apart by the key stored in the
// entry; the later one is kept in a small ordinary map.
//
// The chunks are mapped outside the Go heap (chunk_unix.go), so the cache does not raise the heap goal either, and
// a dropped chunk's memory goes back to the system at once, but for one kept for the next tail. Values returned by
// get alias a chunk: they are valid only until the next put, delete or free, which may unmap or reuse it; callers
// copy what they keep. Not safe for concurrent use; free must be called when the arena is no longer used.
type arena struct {
	seed      maphash.Seed
	hash      func(seed maphash.Seed, key string) uint64 // maphash.String; a test forces collisions
	chunkSize int
	index     map[uint64]uint64 // hash → position: chunk<<32 | offset
	chunks    []chunk           // oldest first; the last one is the tail
	dropped   uint32            // chunks dropped so far: chunks[i] is chunk number dropped+i
	live      int64             // bytes of the entries the index points to
	garbage   int64             // bytes of superseded or deleted entries in chunks not dropped
	held      int64             // capacity of the chunks not dropped
	clash     map[string][]byte // keys whose hash another key held when they were put
	spare     []byte            // the last chunk dropped, emptied, for the next tail (see compact)
	allocated int               // chunks allocated so far
}

// chunk is a run of entries; mapped says it came from allocChunk's mapping rather than the heap.
type chunk struct {
	b      []byte
	mapped bool
}

func (c chunk) free() {
	if c.mapped {
		freeChunk(c.b)
	}
}

// indexEntryBytes approximates what one index entry costs in a Go map (key, value, control byte, load factor).
const indexEntryBytes = 24

func newArena(chunkSize int) *arena {
	return &arena{seed: maphash.MakeSeed(), hash: maphash.String, chunkSize: chunkSize, index: map[uint64]uint64{}}
}

// len is the number of keys held.
func (a *arena) len() int { return len(a.index) + len(a.clash) }

// size is the memory the arena holds, for the cache budget.
func (a *arena) size() int64 {
	n := a.held + int64(cap(a.spare)) + int64(len(a.index))*indexEntryBytes
	for k, v := range a.clash {
		n += int64(len(k) + len(v) + entryOverhead)
	}
	return n
}

// entry decodes the entry at pos.
func (a *arena) entry(pos uint64) (key, value []byte, n int) {
	c := a.chunks[uint32(pos>>32)-a.dropped].b[uint32(pos):]
	kl, i := binary.Uvarint(c)
	key = c[i : i+int(kl)]
	c = c[i+int(kl):]
	vl, j := binary.Uvarint(c)
	value = c[j : j+int(vl)]
	return key, value, i + int(kl) + j + int(vl)
}

func (a *arena) get(key string) ([]byte, bool) {
	if v, ok := a.clash[key]; ok {
		return v, true
	}
	pos, ok := a.index[a.hash(a.seed, key)]
	if !ok {
		return nil, false
	}
	k, v, _ := a.entry(pos)
	if string(k) != key {
		return nil, false
	}
	return v, true
}

// put stores a copy of value under key.
func (a *arena) put(key string, value []byte) {
	if _, ok := a.clash[key]; ok {
		a.clash[key] = append([]byte(nil), value...)
		return
	}
	h := a.hash(a.seed, key)
	if pos, ok := a.index[h]; ok {
		k, _, n := a.entry(pos)
		if string(k) != key {
			if a.clash == nil {
				a.clash = map[string][]byte{}
			}
			a.clash[key] = append([]byte(nil), value...)
			return
		}
		a.live -= int64(n)
		a.garbage += int64(n)
	}
	a.index[h] = a.append(key, value)
	a.compact()
}

func (a *arena) delete(key string) {
	if _, ok := a.clash[key]; ok {
		delete(a.clash, key)
		return
	}
	h := a.hash(a.seed, key)
	pos, ok := a.index[h]
	if !ok {
		return
	}
	k, _, n := a.entry(pos)
	if string(k) != key {
		return
	}
	delete(a.index, h)
	a.live -= int64(n)
	a.garbage += int64(n)
	a.compact()
}

// append writes an entry at the tail and returns its position.
func (a *arena) append(key string, value []byte) uint64 {
	n := binary.MaxVarintLen64*2 + len(key) + len(value)
	if len(a.chunks) == 0 || len(a.chunks[len(a.chunks)-1].b)+n > cap(a.chunks[len(a.chunks)-1].b) {
		// Chunks grow from 4 KiB to chunkSize, so that a small table does not hold a large chunk.
		size := 4 << 10
		if len(a.chunks) > 0 {
			size = min(2*cap(a.chunks[len(a.chunks)-1].b), a.chunkSize)
		}
		size = max(size, n)
		b, mapped := a.spare, true
		if cap(b) >= size {
			a.spare = nil
		} else {
			b, mapped = allocChunk(size)
			a.allocated++
		}
		a.chunks = append(a.chunks, chunk{b: b, mapped: mapped})
		a.held += int64(cap(b))
	}
	ci := len(a.chunks) - 1
	c := a.chunks[ci].b
	off := len(c)
	c = binary.AppendUvarint(c, uint64(len(key)))
	c = append(c, key...)
	c = binary.AppendUvarint(c, uint64(len(value)))
	c = append(c, value...)
	a.chunks[ci].b = c
	a.live += int64(len(c) - off)
	// Chunk numbers wrap after 2^32 chunks; the live ones, far fewer, stay distinct.
	return uint64(a.dropped+uint32(ci))<<32 | uint64(off)
}

// compact drops the oldest chunk, moving its live entries to the tail, while garbage exceeds half the live data:
// at most two chunks per call, so that no update waits for more. The tail chunk is never dropped.
func (a *arena) compact() {
	for range 2 {
		if 2*a.garbage <= a.live || len(a.chunks) < 2 {
			return
		}
		c := a.chunks[0].b
		for off := 0; off < len(c); {
			pos := uint64(a.dropped)<<32 | uint64(off)
			k, v, n := a.entry(pos)
			h := a.hash(a.seed, view(k))
			if a.index[h] == pos {
				a.live -= int64(n)
				a.index[h] = a.append(view(k), v)
			} else {
				a.garbage -= int64(n)
			}
			off += n
		}
		// The live entries are copied out, so the chunk can go. Reslicing forgets it; the slice's next growth
		// copies only the chunks still held.
		a.held -= int64(cap(c))
		// The chunk's pages stay for the next tail: a fresh mapping faults in every page as it is first written,
		// and in a table at steady state every byte appended, an update or an entry moved here, lands in one.
		if a.spare == nil && a.chunks[0].mapped && cap(c) == a.chunkSize {
			a.spare = c[:0]
		} else {
			a.chunks[0].free()
		}
		a.chunks[0] = chunk{}
		a.chunks = a.chunks[1:]
		a.dropped++
	}
}

// free returns the chunks' memory. The arena is empty afterwards.
func (a *arena) free() {
	for _, c := range a.chunks {
		c.free()
	}
	if a.spare != nil {
		freeChunk(a.spare)
	}
	a.chunks, a.index, a.clash, a.spare = nil, map[uint64]uint64{}, nil, nil
	a.live, a.garbage, a.held = 0, 0, 0
}

// each calls f with every key and value held, oldest entry first. f must not keep the slices or change the
// arena.
func (a *arena) each(f func(key, value []byte)) {
	var c cursor
	a.walk(&c, -1, f)
}

// cursor is a position in an arena's chunks, for walking them a piece at a time.
type cursor struct {
	started bool
	chunk   uint32 // chunk number: chunks[chunk-dropped]
	off     int
}

// walk calls f with the entries held from c on, at most n of them (n < 0: all), and reports whether it reached
// the end; the keys that share a hash with another key are reported there. Between calls the arena may change:
// every entry held at the first call and not put or deleted since is still reported once by the walk's end
// (perhaps twice, with the same value), since entries only move forward, to the tail, when their chunk is
// dropped. Entries put since may or may not be reported.
func (a *arena) walk(c *cursor, n int, f func(key, value []byte)) (done bool) {
	if !c.started {
		c.started, c.chunk, c.off = true, a.dropped, 0
	}
	for ; n != 0; n-- {
		if c.chunk-a.dropped >= uint32(len(a.chunks)) { // the cursor's chunk was dropped: its live entries moved on
			c.chunk, c.off = a.dropped, 0
		}
		ci := int(c.chunk - a.dropped)
		for ci < len(a.chunks)-1 && c.off >= len(a.chunks[ci].b) {
			ci, c.chunk, c.off = ci+1, c.chunk+1, 0
		}
		if ci >= len(a.chunks) || c.off >= len(a.chunks[ci].b) {
			for k, v := range a.clash {
				f([]byte(k), v)
			}
			return true
		}
		pos := uint64(c.chunk)<<32 | uint64(c.off)
		k, v, size := a.entry(pos)
		if a.index[a.hash(a.seed, view(k))] == pos {
			f(k, v)
		}
		c.off += size
	}
	return false
}

// journalBytes is about what the held entries take in a journal snapshot: their bytes, and an op byte each.
func (a *arena) journalBytes() int64 {
	n := a.live + int64(len(a.index))
	for k, v := range a.clash {
		n += int64(len(k) + len(v) + 2*binary.MaxVarintLen64)
	}
	return n
}

// view reads an entry's key in place as a string, for the calls that only look at it while they run (hashing, and
// append, which copies it into the newest chunk): a copy through string(k) is two allocations per entry, since the
// hash is called through a func field, and a snapshot walks every entry.
func view(k []byte) string { return unsafe.String(unsafe.SliceData(k), len(k)) }
