package gokaadapter

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Why this file exists: goka marks an input record as consumed as soon as that record's own emits are acknowledged,
// and a Kafka offset commit is cumulative. When the broker goes away, the emits of record N can exhaust their
// retries while those of N+1, sent a moment later, succeed once the broker is back. goka then fails the partition
// for N, but N+1 has already been marked, so the commit jumps over N: its alert and its table update are lost for
// good.
//
// orderedGroup wraps the consumer group goka builds so that a partition's committed offset only ever advances over
// records that are all marked: a record whose emits failed holds the commit back, and everything after it is
// consumed again when the partition restarts. The detector's redelivery handling (see processors/detector) makes
// that replay safe.

// orderedGroupBuilder builds goka's consumer groups from a copy of sc that registers, per partition, each record
// sarama hands out (a consumer interceptor runs in sarama's feeder just before the record enters the claim's
// channel), and wraps the group so that its sessions' MarkOffset goes through the gate. Registering in the feeder
// rather than in a goroutine of our own between the claim and goka saves a channel hand-off per record.
func orderedGroupBuilder(sc *sarama.Config) goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		g := &orderedGroup{}
		conf := *sc
		conf.Consumer.Interceptors = append(slices.Clip(sc.Consumer.Interceptors), dispatchInterceptor{g})
		cg, err := goka.ConsumerGroupBuilderWithConfig(&conf)(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		g.ConsumerGroup = cg
		return g, nil
	}
}

type orderedGroup struct {
	sarama.ConsumerGroup
	// current is the session whose claims sarama is feeding. sarama calls Setup before it starts a session's
	// partition consumers and stops them all before the next session's Setup, so every record the interceptor
	// sees belongs to the session stored here.
	current atomic.Pointer[orderedSession]
}

func (g *orderedGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &orderedHandler{inner: h, group: g})
}

// dispatchInterceptor registers every record with its partition's gate before the handler can see it, so the gate
// knows the order in which the records were handed out.
type dispatchInterceptor struct{ g *orderedGroup }

func (i dispatchInterceptor) OnConsume(m *sarama.ConsumerMessage) {
	if s := i.g.current.Load(); s != nil {
		s.gate(m.Topic, m.Partition).dispatched(m.Offset)
	}
}

// orderedHandler hands the inner handler a session whose MarkOffset is gated per partition. sarama calls Setup,
// then ConsumeClaim once per claim, then Cleanup, with the same session each time; one handler serves one
// Consume call, and so one session at a time.
type orderedHandler struct {
	inner sarama.ConsumerGroupHandler
	group *orderedGroup

	mu      sync.Mutex
	session *orderedSession
}

func (h *orderedHandler) wrap(s sarama.ConsumerGroupSession) *orderedSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.session == nil || h.session.ConsumerGroupSession != s {
		h.session = &orderedSession{ConsumerGroupSession: s, gates: map[topicPartition]*commitGate{}}
		h.group.current.Store(h.session)
	}
	return h.session
}

func (h *orderedHandler) Setup(s sarama.ConsumerGroupSession) error { return h.inner.Setup(h.wrap(s)) }
func (h *orderedHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	return h.inner.Cleanup(h.wrap(s))
}

func (h *orderedHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	return h.inner.ConsumeClaim(h.wrap(s), c)
}

type topicPartition struct {
	topic     string
	partition int32
}

type orderedSession struct {
	sarama.ConsumerGroupSession

	mu    sync.Mutex
	gates map[topicPartition]*commitGate
}

func (s *orderedSession) gate(topic string, partition int32) *commitGate {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := topicPartition{topic, partition}
	g, ok := s.gates[tp]
	if !ok {
		g = &commitGate{marked: map[int64]struct{}{}}
		s.gates[tp] = g
	}
	return g
}

// MarkOffset receives "offset of the record + 1", as goka and sarama's MarkMessage pass it.
func (s *orderedSession) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if next, ok := s.gate(topic, partition).mark(offset - 1); ok {
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
	}
}

// MarkMessage goes through the gate as well, for a handler that marks that way.
func (s *orderedSession) MarkMessage(m *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(m.Topic, m.Partition, m.Offset+1, metadata)
}

// commitGate tracks the records of one partition that were handed out and not yet marked, in offset order.
type commitGate struct {
	mu      sync.Mutex
	pending []int64 // handed out, oldest first; pending[head:] is live
	head    int
	marked  map[int64]struct{} // marked but behind an unmarked record

	last          int64 // the newest record handed out, if dispatchedAny
	dispatchedAny bool
}

func (g *commitGate) dispatched(offset int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// sarama runs the interceptors again for a record whose hand-off timed out (Consumer.MaxProcessingTime);
	// a partition's records come in offset order, so one that is not newer was registered already.
	if g.dispatchedAny && offset <= g.last {
		return
	}
	g.last, g.dispatchedAny = offset, true
	if g.head > 0 && g.head == len(g.pending) {
		g.pending, g.head = g.pending[:0], 0
	}
	g.pending = append(g.pending, offset)
}

// mark records that the record at offset is done and reports the offset to commit when the oldest outstanding
// records are now all done.
func (g *commitGate) mark(offset int64) (next int64, advance bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.marked[offset] = struct{}{}
	for g.head < len(g.pending) {
		o := g.pending[g.head]
		if _, ok := g.marked[o]; !ok {
			break
		}
		delete(g.marked, o)
		g.head++
		next, advance = o+1, true
	}
	if g.head > 1024 && g.head*2 > len(g.pending) {
		// Reclaim the consumed prefix so a long-lived partition does not grow the slice forever.
		g.pending = append(g.pending[:0], g.pending[g.head:]...)
		g.head = 0
	}
	return next, advance
}
