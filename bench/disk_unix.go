//go:build unix

package bench

import "syscall"

// settleDisk has the kernel write the page cache's dirty data before a latency run. The saturation run before it
// leaves about a gigabyte of broker segments and journals dirty, which the kernel writes back 30 s later
// (vm.dirty_expire_centisecs), in the middle of the latency run: the broker's and the journal's writes then wait
// behind it, and a 100-200 ms stall landed in the p99. A steady rate writes back as it goes; the burst is the
// benchmark's own doing.
func settleDisk() { syscall.Sync() }
