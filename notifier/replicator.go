package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Replicator keeps the notifier's copy of the customers topic in Redis (change data capture): no other service
// is called at alert time. The offsets it has applied live in Redis next to the data, written atomically with
// each record, so an empty Redis (a new instance, the embedded one after a restart) rebuilds itself from the
// compacted topic, and a crash never applies a record twice or skips one.
type Replicator struct {
	consumer sarama.Consumer
	client   sarama.Client
	store    *Store
	log      *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}
	failed    error
}

// NewReplicator connects to the cluster; Run starts replicating.
func NewReplicator(brokers []string, cfg *sarama.Config, store *Store, log *slog.Logger) (*Replicator, error) {
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("customers replicator: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("customers replicator: %w", err)
	}
	return &Replicator{consumer: consumer, client: client, store: store, log: log, ready: make(chan struct{})}, nil
}

// Ready blocks until the replica has caught up with the topic as it was at start-up, so no alert is handled
// against a customer record that is still to be replicated.
func (r *Replicator) Ready(ctx context.Context) error {
	select {
	case <-r.ready:
		return r.failed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run replicates every partition until ctx is done. A failure (the cluster unreachable for longer than sarama
// retries) restarts replication from the offsets in Redis after a pause; it never stops the notifier.
func (r *Replicator) Run(ctx context.Context) error {
	defer r.client.Close()
	defer r.consumer.Close()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Second, 30*time.Second
	for {
		err := r.run(ctx)
		if ctx.Err() != nil {
			r.readyOnce.Do(func() { r.failed = ctx.Err(); close(r.ready) })
			return nil
		}
		wait := b.NextBackOff()
		r.log.Error("customers replication stopped; restarting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// run replicates until a partition fails or ctx is done. It returns only once every partition consumer it started
// has stopped, so that the next run starts with none left running beside it.
func (r *Replicator) run(ctx context.Context) (err error) {
	topic := string(topics.Customers)
	parts, err := r.consumer.Partitions(topic)
	if err != nil {
		return fmt.Errorf("customers partitions: %w", err)
	}
	next, err := r.store.replicatedOffsets(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(rctx)
	defer func() {
		cancel()
		if werr := g.Wait(); err == nil {
			err = werr
		}
	}()
	// Partitions not yet caught up with their start-up high watermark; the replica is ready at zero.
	var pending atomic.Int64
	pending.Add(int64(len(parts)))
	caughtUp := func() {
		if pending.Add(-1) == 0 {
			r.readyOnce.Do(func() { close(r.ready) })
			r.log.Info("customer replica caught up", "partitions", len(parts))
		}
	}
	for _, p := range parts {
		hwm, err := r.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("customers high watermark: %w", err)
		}
		oldest, err := r.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("customers oldest offset: %w", err)
		}
		from, ok := next[p]
		if !ok {
			from = oldest
		}
		pc, err := r.consumer.ConsumePartition(topic, p, from)
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			// Compaction or retention removed what Redis had not seen: start over from what the topic has.
			pc, err = r.consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		}
		if err != nil {
			return fmt.Errorf("consume customers/%d: %w", p, err)
		}
		done := from >= hwm
		if done {
			caughtUp()
		}
		g.Go(func() error {
			defer pc.Close()
			for {
				select {
				case <-gctx.Done():
					return nil
				case e := <-pc.Errors():
					// sarama reports what it retries by itself (a broker restarting, a leader moving); the
					// partition consumer carries on.
					r.log.Warn("customers replication", "partition", p, "err", e.Err)
				case m := <-pc.Messages():
					if err := r.store.replicate(gctx, string(m.Key), m.Partition, m.Offset, m.Value); err != nil {
						return err
					}
					if !done && m.Offset+1 >= hwm {
						done = true
						caughtUp()
					}
				}
			}
		})
	}
	if len(parts) == 0 {
		r.readyOnce.Do(func() { close(r.ready) })
	}
	return g.Wait()
}
