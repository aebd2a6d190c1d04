package store

import (
	"fmt"
	"testing"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// BenchmarkPaymentUpdate is one payment's work on local storage, as goka does it: read the account's state, write
// the new state, then record the acknowledged changelog offset. It compares goka's LevelDB storage with this
// store, over 200,000 accounts drawn in a fixed pseudo-random order.
func BenchmarkPaymentUpdate(b *testing.B) {
	const accounts = 200_000
	ldb := &opt.Options{Filter: filter.NewBloomFilter(10), WriteBuffer: 8 * opt.MiB, BlockCacheCapacity: 8 * opt.MiB}
	value := make([]byte, 160)
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct_%06d", (i*7919)%accounts)
	}
	for _, c := range []struct {
		name  string
		build storage.Builder
	}{
		{"goka-leveldb", storage.BuilderWithOptions(b.TempDir(), ldb)},
		{"store-uncached", Builder(b.TempDir(), Options{LevelDB: ldb})},
		{"store-cached", Builder(b.TempDir(), Options{LevelDB: ldb, CacheBytes: 256 << 20})},
	} {
		b.Run(c.name, func(b *testing.B) {
			st, err := c.build("table", 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Open(); err != nil {
				b.Fatal(err)
			}
			if err := st.MarkRecovered(); err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := keys[i%accounts]
				if _, err := st.Get(k); err != nil {
					b.Fatal(err)
				}
				if err := st.Set(k, value); err != nil {
					b.Fatal(err)
				}
				if err := st.SetOffset(int64(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
