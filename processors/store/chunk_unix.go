//go:build unix

package store

import "syscall"

// allocChunk returns an empty slice of capacity n in memory mapped outside the Go heap: the collector neither
// scans it nor counts it toward the heap goal, so a cache of S bytes costs S of RSS instead of the 2·S a heap
// allocation costs under GOGC=100 (the heap grows to twice what is live before each collection). mapped reports
// whether the memory must be returned with freeChunk; if the mapping fails, the chunk comes from the heap.
func allocChunk(n int) (b []byte, mapped bool) {
	m, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, n), false
	}
	return m[:0], true
}

// freeChunk unmaps a chunk from allocChunk. Nothing may read it afterwards.
func freeChunk(b []byte) {
	if err := syscall.Munmap(b[:cap(b)]); err != nil {
		// Only an address that was not mapped fails; that is a bug in the arena's bookkeeping.
		panic("store: unmap arena chunk: " + err.Error())
	}
}
