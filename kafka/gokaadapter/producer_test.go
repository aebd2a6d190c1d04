package gokaadapter

import (
	"bytes"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/kafka"
)

// emitted is what a promise of the processors' producer resolved with.
type emitted struct {
	msg *sarama.ProducerMessage
	err error
}

func newProducer(t *testing.T, brokers []string, hasher func() hash.Hash32, m *ProducerMetrics) goka.Producer {
	t.Helper()
	return newProducerWith(t, kafka.Config{Brokers: brokers, Partitions: 1, Replication: 1, Flush: time.Millisecond}, hasher, m)
}

func newProducerWith(t *testing.T, c kafka.Config, hasher func() hash.Hash32, m *ProducerMetrics) goka.Producer {
	t.Helper()
	brokers := c.Brokers
	p, err := ProducerBuilder(c, "producer-test", slog.New(slog.DiscardHandler), m)(brokers, "producer-test", hasher)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// await waits for a promise; goka resolves it from the producer's goroutine.
func await(t *testing.T, p *goka.Promise) emitted {
	t.Helper()
	ch := make(chan emitted, 1)
	p.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) { ch <- emitted{msg, err} })
	select {
	case e := <-ch:
		return e
	case <-time.After(time.Minute):
		t.Fatal("promise not resolved within a minute")
		return emitted{}
	}
}

// goka's processors expect a key on the partition goka's hasher picks, as sarama's hash partitioner does: the
// producer command writes payments there, the detector its table and loop topic, and an account whose state
// landed on another partition than its payments would lose its state on the next rebalance or restart. Checked for every key, the empty one included, and for a hasher other than goka's default.
func TestProducerPlacesKeysWhereSaramaDoes(t *testing.T) {
	const partitions = 7
	brokers := testenv.Kafka(t, partitions, "t").Brokers
	for name, hasher := range map[string]func() hash.Hash32{"fnv-1a (goka's default)": fnv.New32a, "crc32": func() hash.Hash32 { return crc32.NewIEEE() }} {
		t.Run(name, func(t *testing.T) {
			p := newProducer(t, brokers, hasher, nil)
			defer p.Close()
			sp := sarama.NewCustomHashPartitioner(hasher)("t")
			keys := []string{""}
			for i := range 2000 {
				keys = append(keys, fmt.Sprintf("acct_%d", i))
			}
			promises := make([]*goka.Promise, len(keys))
			for i, k := range keys {
				promises[i] = p.Emit("t", k, []byte("v"))
			}
			used := map[int32]bool{}
			for i, k := range keys {
				e := await(t, promises[i])
				if e.err != nil {
					t.Fatalf("key %q: %v", k, e.err)
				}
				want, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, partitions)
				if err != nil {
					t.Fatal(err)
				}
				if e.msg.Partition != want {
					t.Fatalf("key %q written to partition %d; sarama puts it on %d", k, e.msg.Partition, want)
				}
				used[want] = true
			}
			if len(used) != partitions {
				t.Fatalf("the keys used %d of %d partitions", len(used), partitions)
			}
		})
	}
}

// A write resolves its promise with where the broker put it (goka keeps a table write's offset as the local
// storage's), and the record carries the key, value and headers it was given.
func TestProducerWritesWhatItWasGiven(t *testing.T) {
	brokers := testenv.Kafka(t, 3, "t").Brokers
	p := newProducer(t, brokers, fnv.New32a, nil)
	defer p.Close()
	var last emitted
	for i := range 5 {
		last = await(t, p.EmitWithHeaders("t", "acct_1", []byte(fmt.Sprintf("state %d", i)), goka.Headers{"h": []byte("x")}))
		if last.err != nil {
			t.Fatal(last.err)
		}
		if last.msg.Offset != int64(i) {
			t.Fatalf("write %d resolved with offset %d", i, last.msg.Offset)
		}
	}
	consumer, err := sarama.NewConsumer(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition("t", last.msg.Partition, last.msg.Offset)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if string(m.Key) != "acct_1" || string(m.Value) != "state 4" || len(m.Headers) != 1 ||
			string(m.Headers[0].Key) != "h" || !bytes.Equal(m.Headers[0].Value, []byte("x")) {
			t.Fatalf("read back key %q value %q headers %v", m.Key, m.Value, m.Headers)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing read back")
	}
}

// A write the broker never acknowledges rejects its promise, so goka stops the processor and the payment is never
// committed; one the broker refuses is rejected at once. The metrics show the writes waiting and those that failed.
func TestProducerRejectsWritesItCannotDeliver(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.ListenAddrs()
	m := NewProducerMetrics(prometheus.NewRegistry(), "producer-test")
	p := newProducer(t, brokers, fnv.New32a, m)
	defer p.Close()
	if e := await(t, p.Emit("t", "k", make([]byte, 2<<20))); e.err == nil {
		t.Fatal("a 2 MiB record was acknowledged; the broker's limit is 1 MiB")
	}
	if e := await(t, p.Emit("t", "k", []byte("v"))); e.err != nil {
		t.Fatalf("a record after the refused one: %v", e.err)
	}
	if got := testutil.ToFloat64(m.failed); got != 1 {
		t.Fatalf("failed writes %v, want 1", got)
	}

	p2 := newProducerWith(t, kafka.Config{Brokers: brokers, Partitions: 1, Replication: 1, Flush: time.Millisecond,
		DeliveryTimeout: 5 * time.Second}, fnv.New32a, m)
	defer p2.Close()
	if e := await(t, p2.Emit("t", "k", []byte("v"))); e.err != nil {
		t.Fatal(e.err)
	}
	c.Close()
	promise := p2.Emit("t", "k", []byte("v"))
	testenv.WaitFor(t, 5*time.Second, "the write to the stopped broker shown as buffered", func() bool {
		return testutil.ToFloat64(m.buffered) == 1
	})
	// await gives it a minute: the delivery timeout, not a retry that never ends, must reject it.
	if e := await(t, promise); e.err == nil {
		t.Fatal("a write to a stopped broker was acknowledged")
	} else {
		t.Logf("rejected: %v", e.err)
	}
	if got := testutil.ToFloat64(m.failed); got != 2 {
		t.Fatalf("failed writes %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.buffered); got != 0 {
		t.Fatalf("buffered writes %v after the rejection, want 0", got)
	}
}

// With a configured partitioner the processors' writes place keys by it, whatever hasher goka hands over: the
// detector's loop and table then sit where the users' producers put each account's payments.
func TestProducerPlacesKeysByTheConfiguredPartitioner(t *testing.T) {
	const partitions = 7
	brokers := testenv.Kafka(t, partitions, "t").Brokers
	for _, pt := range []kafka.Partitioner{kafka.Murmur2, kafka.CRC32, kafka.FNV1a} {
		t.Run(string(pt), func(t *testing.T) {
			p := newProducerWith(t, kafka.Config{Brokers: brokers, Partitions: partitions, Replication: 1, Flush: time.Millisecond, Partitioner: pt}, fnv.New32a, nil)
			defer p.Close()
			promises := map[string]*goka.Promise{}
			for i := range 1000 {
				k := fmt.Sprintf("acct_%d", i)
				promises[k] = p.Emit("t", k, []byte("v"))
			}
			moved := 0
			for k, pr := range promises {
				e := await(t, pr)
				if e.err != nil {
					t.Fatalf("key %q: %v", k, e.err)
				}
				if want := pt.Partition(k, partitions); e.msg.Partition != want {
					t.Fatalf("key %q written to partition %d; %s puts it on %d", k, e.msg.Partition, pt, want)
				}
				if e.msg.Partition != kafka.FNV1a.Partition(k, partitions) {
					moved++
				}
			}
			if (pt == kafka.FNV1a) != (moved == 0) {
				t.Fatalf("%s placed %d of 1000 keys apart from FNV-1a", pt, moved)
			}
		})
	}
}
