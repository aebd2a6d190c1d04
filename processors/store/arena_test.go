package store

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// arenaHashes are the hash functions the arena's tests run with: its own, and one under which most keys collide.
var arenaHashes = []struct {
	name string
	hash func(maphash.Seed, string) uint64
}{
	{"maphash", maphash.String},
	// Eight hash values for hundreds of keys: most puts collide with another key.
	{"colliding", func(_ maphash.Seed, k string) uint64 { return uint64(len(k)+int(k[len(k)-1])) % 8 }},
}

// The arena must answer exactly like a map through updates, deletes, hash collisions and compaction, and must not
// grow without bound while a fixed set of keys is rewritten.
func TestArenaBehavesLikeAMap(t *testing.T) {
	for _, c := range arenaHashes {
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

// A detector runs for months: dropped chunks must be unmapped (all but a spare) and must not leave a slot behind each.
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

// A table at steady state appends every update, and the entries that compaction moves, to the tail: in freshly
// mapped chunks each of those bytes would first fault its page in (about a tenth of a cached update's time). The dropped
// chunk becomes the next tail instead.
func TestArenaReusesDroppedChunks(t *testing.T) {
	a := newArena(16 << 10)
	defer a.free()
	for i := range 50_000 {
		a.put(fmt.Sprint("acct_", i%500), make([]byte, 100+i%50))
	}
	if a.dropped < 100 {
		t.Fatalf("%d chunks dropped; the test did not exercise compaction", a.dropped)
	}
	// The chunks held now, the spare, and one for each growth step from 4 KiB to the chunk size.
	if limit := len(a.chunks) + 1 + 2; a.allocated > limit {
		t.Fatalf("%d chunks allocated for %d held after %d were dropped (at most %d)", a.allocated, len(a.chunks), a.dropped, limit)
	}
	if got := a.size() - int64(len(a.index))*indexEntryBytes; got != a.held+int64(a.chunkSize) {
		t.Fatalf("size counts %d bytes of chunks, want the %d held plus the spare's %d", got, a.held, a.chunkSize)
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

// A walk taken a piece at a time while the arena is updated and compacts under it (as a journal snapshot is)
// reports every key that was not touched since it began, with its value, and nothing that was never held.
func TestArenaWalkSurvivesUpdatesBetweenPieces(t *testing.T) {
	for _, c := range arenaHashes {
		t.Run(c.name, func(t *testing.T) {
			a := newArena(4 << 10)
			defer a.free()
			a.hash = c.hash
			const keys = 2000
			held := map[string]string{}
			for i := range keys {
				k, v := fmt.Sprint("acct_", i), fmt.Sprintf("first %d %s", i, make([]byte, i%50))
				a.put(k, []byte(v))
				held[k] = v
			}
			rng := rand.New(rand.NewPCG(3, 4))
			// Churn first, so that the arena sits at its garbage limit and compacts the oldest chunk, where the
			// walk begins, on the next updates.
			for range 20_000 {
				k := fmt.Sprint("acct_", rng.IntN(keys))
				v := fmt.Sprintf("churned %d %s", rng.Int(), make([]byte, rng.IntN(50)))
				a.put(k, []byte(v))
				held[k] = v
			}
			touched := map[string]bool{}
			reported := map[string]string{}
			var cur cursor
			pieces := 0
			for !a.walk(&cur, 7, func(k, v []byte) { reported[string(k)] = string(v) }) {
				pieces++
				// Enough updates between pieces that chunks the walk has not reached are dropped under it, and
				// fewer than it visits, so that it ends (writeSnapshot makes sure of that).
				for range 4 {
					k := fmt.Sprint("acct_", rng.IntN(keys+500))
					touched[k] = true
					if rng.IntN(5) == 0 {
						a.delete(k)
					} else {
						a.put(k, fmt.Appendf(nil, "later %d", rng.Int()))
					}
				}
			}
			// (With eight hash values nearly every key is a clash, reported at the end.)
			if c.name == "maphash" && (a.dropped == 0 || pieces < 10) {
				t.Fatalf("%d pieces, %d chunks dropped: the walk did not run while the arena compacted", pieces, a.dropped)
			}
			for k, v := range held {
				if touched[k] {
					continue
				}
				if got, ok := reported[k]; !ok || got != v {
					t.Fatalf("untouched %s reported as %q (%v), want %q", k, got, ok, v)
				}
			}
			for k := range reported {
				if _, ok := held[k]; !ok && !touched[k] {
					t.Fatalf("%s reported but never held", k)
				}
			}
		})
	}
}
