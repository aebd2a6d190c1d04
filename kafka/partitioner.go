package kafka

import (
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Partitioner is how keys map to partitions. Payments that a producer placed the way the pipeline's own writes
// place their account skip the detector's loop hop, so the pipeline hashes the way its users' producers do.
type Partitioner string

// The partitioners users' producers come with.
const (
	// Murmur2 is Apache Kafka's default: the Java client, Kafka Streams, franz-go, kafka-python.
	Murmur2 Partitioner = "murmur2"
	// CRC32 is librdkafka's default (consistent_random): kcat, confluent-kafka-go, confluent-kafka-python.
	CRC32 Partitioner = "crc32"
	// FNV1a is goka's and sarama's default; pipelines created before the setting existed use it.
	FNV1a Partitioner = "fnv1a"
	// DefaultPartitioner is what a new pipeline records when it is not told otherwise.
	DefaultPartitioner = Murmur2
)

// ParsePartitioner accepts murmur2, crc32 and fnv1a, and "" for "the pipeline's".
func ParsePartitioner(s string) (Partitioner, error) {
	switch p := Partitioner(s); p {
	case "", Murmur2, CRC32, FNV1a:
		return p, nil
	}
	return "", fmt.Errorf("partitioner %q: want murmur2 (Java clients, Kafka Streams), crc32 (librdkafka, kcat) or fnv1a (goka, sarama)", s)
}

// Partition returns the partition of key among n, exactly as the clients named above compute it.
func (p Partitioner) Partition(key string, n int32) int32 {
	b := unsafe.Slice(unsafe.StringData(key), len(key)) // only read
	switch p {
	case Murmur2:
		return int32(murmur2(b)&0x7fffffff) % n
	case CRC32:
		return int32(crc32.ChecksumIEEE(b) % uint32(n))
	}
	h := uint32(2166136261) // FNV-1a, placed the way sarama's hash partitioner does
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	part := int32(h) % n
	if part < 0 {
		part = -part
	}
	return part
}

// KgoPartitioner places keyed records as Partition does (records without a key go to a sticky partition).
func (p Partitioner) KgoPartitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(func(key []byte, n int) int {
		return int(p.Partition(unsafe.String(unsafe.SliceData(key), len(key)), int32(n)))
	})
}

// murmur2 is Apache Kafka's Utils.murmur2, which its DefaultPartitioner masks to 31 bits.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Placement is how this configuration's writes place keys: by Partitioner, or without one where sarama's hash
// partitioner puts them with hasher (goka's default, FNV-1a, when nil).
func (c Config) Placement(hasher func() hash.Hash32) kgo.Partitioner {
	if c.Partitioner != "" {
		return c.Partitioner.KgoPartitioner()
	}
	if hasher == nil {
		hasher = fnv.New32a
	}
	return KeyPartitioner(hasher)
}

// KeyPartitioner places a keyed record on the partition sarama's hash partitioner would with hasher, which is how
// goka's processors place keys (goka.DefaultHasher, FNV-1a, unless a processor is given another): payments, a
// table's changelog and a loop topic must agree on which partition holds an account. Each topic gets its own
// hasher, since franz-go calls a topic's partitioner under that topic's lock only. A record without a key goes to
// a partition picked at random, as with sarama.
func KeyPartitioner(hasher func() hash.Hash32) kgo.Partitioner { return keyPartitioner{hasher} }

type keyPartitioner struct{ hasher func() hash.Hash32 }

func (p keyPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	h := p.hasher()
	sum := func(key []byte) uint32 {
		h.Reset()
		h.Write(key)
		return h.Sum32()
	}
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(sum)).ForTopic(topic)
}
