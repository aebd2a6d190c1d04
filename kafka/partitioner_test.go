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

// Apache Kafka's own test vectors for Utils.murmur2 (UtilsTest.testMurmur2).
func TestMurmur2MatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, Kafka says %d", in, got, want)
		}
	}
}

// Each partitioner places every key where the client it is named after does: franz-go's default (Kafka's
// murmur2), franz-go's librdkafka-compatible CRC32 hasher, and sarama's hash partitioner with FNV-1a.
func TestPartitionersPlaceKeysWhereTheirClientsDo(t *testing.T) {
	sp := sarama.NewHashPartitioner("payments")
	for _, n := range []int32{1, 3, 6, 7, 32} {
		for i := range 2000 {
			key := fmt.Sprintf("acct_%06d", i*7919)
			if i == 0 {
				key = ""
			}
			r := &kgo.Record{Key: []byte(key)}
			if got, want := Murmur2.Partition(key, n), kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(r, int(n)); int(got) != want {
				t.Fatalf("murmur2 %q over %d: %d, the Java client's %d", key, n, got, want)
			}
			if got, want := CRC32.Partition(key, n), kgo.SaramaHasher(crc32.ChecksumIEEE)(r.Key, int(n)); int(got) != want {
				t.Fatalf("crc32 %q over %d: %d, librdkafka's %d", key, n, got, want)
			}
			want, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := FNV1a.Partition(key, n); got != want {
				t.Fatalf("fnv1a %q over %d: %d, sarama's %d", key, n, got, want)
			}
			for _, p := range []Partitioner{Murmur2, CRC32, FNV1a} {
				if got := p.KgoPartitioner().ForTopic("t").Partition(r, int(n)); int32(got) != p.Partition(key, n) {
					t.Fatalf("%s as a franz-go partitioner puts %q on %d, not %d", p, key, got, p.Partition(key, n))
				}
			}
		}
	}
}

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
