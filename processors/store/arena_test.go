package store

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// The arena must answer exactly like a map through updates, deletes, hash collisions and compaction, and must not
// grow without bound while a fixed set of keys is rewritten.
func TestArenaBehavesLikeAMap(t *testing.T) {
	for _, c := range []struct {
		name string
		hash func(maphash.Seed, string) uint64
	}{
		{"maphash", maphash.String},
		// Eight hash values for 300 keys: most puts collide with another key.
		{"colliding", func(_ maphash.Seed, k string) uint64 { return uint64(len(k)+int(k[len(k)-1])) % 8 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newArena(4 << 10)
			defer a.free()
			a.hash = c.hash
			model := map[string]string{}
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 200_000 {
				k := fmt.Sprint("acct_", rng.IntN(300))
				switch {
				case rng.IntN(10) == 0:
					a.delete(k)
					delete(model, k)
				default:
					v := fmt.Sprintf("state %d %s", i, make([]byte, rng.IntN(200)))
					a.put(k, []byte(v))
					model[k] = v
				}
				if i%1000 == 0 {
					for j := range 300 {
						k := fmt.Sprint("acct_", j)
						got, ok := a.get(k)
						want, wantOK := model[k]
						if ok != wantOK || string(got) != want {
							t.Fatalf("after %d operations %s = %q (%v), want %q (%v)", i, k, got, ok, want, wantOK)
						}
					}
				}
			}
			if a.len() != len(model) {
				t.Fatalf("len = %d, want %d", a.len(), len(model))
			}
			// Garbage is reclaimed: what the chunks hold stays within a small multiple of the live data.
			var live int64
			for k, v := range model {
				live += int64(len(k) + len(v) + 2)
			}
			if a.dropped == 0 || a.held > 3*live+3*int64(a.chunkSize) {
				t.Fatalf("chunks hold %d bytes for %d live (%d chunks dropped)", a.held, live, a.dropped)
			}
		})
	}
}

// A detector runs for months: dropped chunks must be unmapped and must not leave a slot behind each.
func TestArenaDropsChunks(t *testing.T) {
	a := newArena(4 << 10)
	defer a.free()
	for i := range 10_000 {
		a.put(fmt.Sprint("k", i%50), make([]byte, 100))
		a.put("a", []byte(fmt.Sprint("next ", i)))
	}
	if a.dropped < 100 {
		t.Fatalf("%d chunks dropped; the test did not exercise compaction", a.dropped)
	}
	if cap(a.chunks) > 64 {
		t.Fatalf("%d chunks held in a slice of capacity %d after %d were dropped", len(a.chunks), cap(a.chunks), a.dropped)
	}
	if v, _ := a.get("a"); string(v) != "next 9999" {
		t.Fatalf("a = %q", v)
	}
}

// Reading the cache allocates nothing, and the collector has no pointer per key to mark.
func TestArenaGetDoesNotAllocate(t *testing.T) {
	a := newArena(1 << 20)
	defer a.free()
	for i := range 1000 {
		a.put(fmt.Sprint("acct_", i), make([]byte, 168))
	}
	if n := testing.AllocsPerRun(100, func() { a.get("acct_500") }); n != 0 {
		t.Fatalf("get allocates %v times", n)
	}
}
