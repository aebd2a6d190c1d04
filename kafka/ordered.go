package kafka

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Why this file exists: goka marks an input record as consumed as soon as that record's own emits are acknowledged,
// and a Kafka offset commit is cumulative. When the broker goes away, the emits of record N can exhaust their
// retries while those of N+1, sent a moment later, succeed once the broker is back. goka then fails the partition
// for N, but N+1 has already been marked, so the commit jumps over N: its alert and its table update are lost for
// good. (Seen in the e2e suite as a few missing alerts after a broker restart, on kfake and on Apache Kafka alike.)
//
// orderedGroup wraps the consumer group goka builds so that a partition's committed offset only ever advances over
// records that are all marked: a record whose emits failed holds the commit back, and everything after it is
// consumed again when the partition restarts. The detector's redelivery handling (see processors/detector) makes
// that replay safe.

// orderedGroupBuilder wraps every consumer group that build returns.
func orderedGroupBuilder(build goka.ConsumerGroupBuilder) goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cg, err := build(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		return orderedGroup{cg}, nil
	}
}

type orderedGroup struct{ sarama.ConsumerGroup }

func (g orderedGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &orderedHandler{inner: h})
}

// orderedHandler hands the inner handler a session whose MarkOffset is gated per partition. sarama calls Setup,
// then ConsumeClaim once per claim, then Cleanup, with the same session each time; one handler serves one
// Consume call, and so one session at a time.
type orderedHandler struct {
	inner sarama.ConsumerGroupHandler

	mu      sync.Mutex
	session *orderedSession
}

func (h *orderedHandler) wrap(s sarama.ConsumerGroupSession) *orderedSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.session == nil || h.session.ConsumerGroupSession != s {
		h.session = &orderedSession{ConsumerGroupSession: s, gates: map[topicPartition]*commitGate{}}
	}
	return h.session
}

func (h *orderedHandler) Setup(s sarama.ConsumerGroupSession) error { return h.inner.Setup(h.wrap(s)) }
func (h *orderedHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	return h.inner.Cleanup(h.wrap(s))
}

func (h *orderedHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	os := h.wrap(s)
	gate := os.gate(c.Topic(), c.Partition())
	msgs := make(chan *sarama.ConsumerMessage)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(msgs)
		// Every record is registered before the inner handler can see it, so the gate knows the order in which
		// the records were handed out. sarama drains the claim itself once ConsumeClaim returns.
		for {
			var m *sarama.ConsumerMessage
			select {
			case msg, ok := <-c.Messages():
				if !ok {
					return
				}
				m = msg
			case <-stop:
				return
			}
			gate.dispatched(m.Offset)
			select {
			case msgs <- m:
			case <-stop:
				return
			}
		}
	}()
	err := h.inner.ConsumeClaim(os, orderedClaim{ConsumerGroupClaim: c, msgs: msgs})
	close(stop)
	<-done
	return err
}

type orderedClaim struct {
	sarama.ConsumerGroupClaim
	msgs chan *sarama.ConsumerMessage
}

func (c orderedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

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
}

func (g *commitGate) dispatched(offset int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
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
