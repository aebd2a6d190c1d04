package kafka

import (
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Every franz-go writer places a key where sarama's hash partitioner does with the same hasher, which is where goka's
// processors look for it: checked for the empty key, many account ids, several partition counts, and a hasher
// other than goka's default.
func TestKeyPartitionerPlacesKeysWhereSaramaDoes(t *testing.T) {
	for name, hasher := range map[string]func() hash.Hash32{"fnv-1a (goka's default)": fnv.New32a, "crc32": func() hash.Hash32 { return crc32.NewIEEE() }} {
		for _, n := range []int32{1, 3, 7, 12} {
			kp := KeyPartitioner(hasher).ForTopic("t")
			sp := sarama.NewCustomHashPartitioner(hasher)("t")
			for i := range 2001 {
				key := ""
				if i > 0 {
					key = fmt.Sprintf("acct_%d", i)
				}
				want, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
				if err != nil {
					t.Fatal(err)
				}
				if got := kp.Partition(&kgo.Record{Key: []byte(key)}, int(n)); int32(got) != want {
					t.Fatalf("%s, %d partitions: key %q placed on %d, sarama puts it on %d", name, n, key, got, want)
				}
			}
		}
	}
}
