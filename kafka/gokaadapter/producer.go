package gokaadapter

import (
	"context"
	"fmt"
	"hash"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The processors write through franz-go's client instead of goka's default producer, sarama's AsyncProducer, which
// hands every record through five goroutines where franz-go appends it to its partition's batch under a lock
// (the CPU it saves: docs/performance.md). What goka relies on is kept: acknowledged writes of a partition land
// once and in order (idempotent, all replicas' acks; restart_test.go restarts the broker under it), a failed write
// rejects its promise so the input record is never committed (ordered.go), and every key lands on the partition
// goka's hasher picks, the one sarama's hash partitioner picks, so tables, loop topics and the inputs stay
// copartitioned (kafka.KeyPartitioner).

// ProducerMetrics shows what a component's processor producer is waiting on: while a broker is away, its writes
// wait in memory (up to the delivery timeout) and the processor stops taking payments once 50,000 are waiting.
// One per component; the processor's producer is rebuilt whenever its supervisor restarts it.
type ProducerMetrics struct {
	current  atomic.Pointer[kgo.Client]
	failed   prometheus.Counter
	buffered prometheus.GaugeFunc
}

// NewProducerMetrics registers fraudpipe_producer_buffered_records and fraudpipe_producer_failed_writes_total for
// the component named client (fraudpipe-detector, fraudpipe-notifier).
func NewProducerMetrics(reg prometheus.Registerer, client string) *ProducerMetrics {
	m := &ProducerMetrics{failed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraudpipe_producer_failed_writes_total", ConstLabels: prometheus.Labels{"client": client},
		Help: "Processor writes the broker did not acknowledge; each stops the processor, which its supervisor restarts.",
	})}
	m.buffered = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fraudpipe_producer_buffered_records", ConstLabels: prometheus.Labels{"client": client},
		Help: "Processor writes not yet acknowledged by the broker; rises while a broker is away.",
	}, func() float64 {
		if cl := m.current.Load(); cl != nil {
			return float64(cl.BufferedProduceRecords())
		}
		return 0
	})
	reg.MustRegister(m.failed, m.buffered)
	return m
}

// ProducerBuilder builds the processors' producers for goka on c's franz-go settings; m may be nil.
func ProducerBuilder(c kafka.Config, clientID string, log *slog.Logger, m *ProducerMetrics) goka.ProducerBuilder {
	return func(brokers []string, _ string, hasher func() hash.Hash32) (goka.Producer, error) {
		// Idempotent, with acks from all in-sync replicas, as the changelogs need: see Config.ProducerOptions.
		// Idempotence also keeps a partition's writes in order with several requests in flight: the broker rejects
		// a sequence number that skips one, and the client resends in order.
		opts, err := c.ProducerOptions(clientID, log)
		if err != nil {
			return nil, err
		}
		client, err := kgo.NewClient(append(opts,
			kgo.SeedBrokers(brokers...),
			// franz-go otherwise never fails a write it may have sent, however long the broker stays away, and the
			// processor would hang instead of stopping with the error. A write failed that way may still have
			// landed; its input record is then processed again, which the pipeline tolerates (a changelog's last
			// write wins, the detector recognises a redelivered payment, alerts carry ids).
			kgo.AllowIdempotentProduceCancellation(),
			kgo.RecordPartitioner(c.Placement(hasher)),
		)...)
		if err != nil {
			return nil, fmt.Errorf("producer client: %w", err)
		}
		p := &producer{client: client}
		p.doneFn = p.done
		if m != nil {
			m.current.Store(client)
			p.failed = m.failed
		}
		return p, nil
	}
}

// producer is goka's Producer on a franz-go client.
type producer struct {
	client *kgo.Client
	failed prometheus.Counter // nil without metrics
	doneFn func(*kgo.Record, error)
}

// write is one record in flight with what its outcome goes to: one allocation per record where a record, a
// callback closure and goka's message were three. The record comes first, so done finds the write from it.
type write struct {
	rec    kgo.Record
	msg    sarama.ProducerMessage
	finish goka.PromiseFinisher
}

// emptyKey is the key of goka's keyless emits: sarama sends "" as an empty key, not a null one, and hashes it to a
// fixed partition; a null key would be spread over the partitions instead.
var emptyKey = []byte{}

func (p *producer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

func (p *producer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	w := &write{finish: finish}
	w.rec = kgo.Record{Topic: topic, Key: emptyKey, Value: value}
	if key != "" {
		// franz-go only reads the key, so it can share the string's bytes instead of copying them.
		w.rec.Key = unsafe.Slice(unsafe.StringData(key), len(key))
	}
	for k, v := range headers {
		w.rec.Headers = append(w.rec.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	p.client.Produce(context.Background(), &w.rec, p.doneFn)
	return promise
}

// done settles a write's promise; franz-go calls it once per record.
func (p *producer) done(r *kgo.Record, err error) {
	w := (*write)(unsafe.Pointer(r)) // r is &w.rec, the write's first field
	if err != nil && p.failed != nil {
		p.failed.Inc()
	}
	// goka's table writes read the offset from the message (it becomes the local storage's offset).
	w.msg = sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	w.finish(&w.msg, err)
}

// Close waits for the writes in flight, as goka's sarama producer does on close, and gives up after a minute
// as it does.
func (p *producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.client.Flush(ctx)
	p.client.Close()
	if err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}
