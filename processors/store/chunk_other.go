//go:build !unix

package store

// allocChunk takes the chunk from the Go heap where mmap is not available.
func allocChunk(n int) ([]byte, bool) { return make([]byte, 0, n), false }

func freeChunk([]byte) {}
