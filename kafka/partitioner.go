package kafka

import (
	"hash"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
