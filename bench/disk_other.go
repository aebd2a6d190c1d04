//go:build !unix

package bench

// settleDisk: see disk_unix.go.
func settleDisk() {}
