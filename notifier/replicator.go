package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Replicator keeps the notifier's copy of the customers topic in Redis (change data capture): no other service
// is called at alert time. The offsets it has applied live in Redis next to the data, written atomically with
// each record, so an empty Redis (a new instance, the embedded one after a restart) rebuilds itself from the
// compacted topic, and a crash never applies a record twice or skips one.
type Replicator struct {
	opts  []kgo.Opt
	store *Store
	log   *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}
	failed    error
}

// NewReplicator returns a replicator of the cluster's customers topic; Run starts replicating.
func NewReplicator(cfg kafka.Config, store *Store, log *slog.Logger) (*Replicator, error) {
	opts, err := cfg.ClientOptions("fraudpipe-customers", log)
	if err != nil {
		return nil, fmt.Errorf("customers replicator: %w", err)
	}
	// Compaction or retention removed what Redis had not seen: start over from what the topic has.
	opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	return &Replicator{opts: opts, store: store, log: log, ready: make(chan struct{})}, nil
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

// Run replicates every partition until ctx is done. The client rides out a broker restart by itself; a failure
// (the topic's offsets not listed, Redis answering with an error) restarts replication from the offsets in Redis
// after a pause; it never stops the notifier.
func (r *Replicator) Run(ctx context.Context) error {
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

// partition is the replication of one partition of the customers topic; only one goroutine at a time touches it.
type partition struct {
	hwm  int64 // the high watermark at the start of the run
	done bool  // caught up with hwm
}

// run replicates until a record cannot be applied or ctx is done. Its client is closed when it returns, so the
// next run starts with nothing left running beside it.
func (r *Replicator) run(ctx context.Context) error {
	topic := string(topics.Customers)
	client, err := kgo.NewClient(slices.Clone(r.opts)...)
	if err != nil {
		return fmt.Errorf("customers replicator: %w", err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	hwms, err := admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = hwms.Error()
	}
	if err != nil {
		return fmt.Errorf("customers high watermark: %w", err)
	}
	oldest, err := admin.ListStartOffsets(ctx, topic)
	if err == nil {
		err = oldest.Error()
	}
	if err != nil {
		return fmt.Errorf("customers oldest offset: %w", err)
	}
	next, err := r.store.replicatedOffsets(ctx)
	if err != nil {
		return err
	}
	// Partitions not yet caught up with their start-up high watermark; the replica is ready at zero.
	var pending atomic.Int64
	pending.Add(int64(len(hwms[topic])))
	caughtUp := func() {
		if pending.Add(-1) == 0 {
			r.readyOnce.Do(func() { close(r.ready) })
			r.log.Info("customer replica caught up", "partitions", len(hwms[topic]))
		}
	}
	parts := map[int32]*partition{}
	from := map[int32]kgo.Offset{}
	for p, hwm := range hwms[topic] {
		start, ok := next[p]
		if !ok {
			start = oldest[topic][p].Offset
		}
		from[p] = kgo.NewOffset().At(start)
		parts[p] = &partition{hwm: hwm.Offset, done: start >= hwm.Offset}
		if parts[p].done {
			caughtUp()
		}
	}
	if len(parts) == 0 {
		r.readyOnce.Do(func() { close(r.ready) })
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			// franz-go retries what it can by itself (a broker restarting, a leader moving) and carries on.
			r.log.Warn("customers replication", "partition", p, "err", err)
		})
		// Partitions are applied side by side, each in its order.
		batches := map[int32][]*kgo.Record{}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			batches[fp.Partition] = append(batches[fp.Partition], fp.Records...)
		})
		g, gctx := errgroup.WithContext(ctx)
		for p, records := range batches {
			st := parts[p]
			if st == nil {
				continue
			}
			g.Go(func() error {
				for _, m := range records {
					if err := r.store.replicate(gctx, string(m.Key), m.Partition, m.Offset, m.Value); err != nil {
						return err
					}
					if !st.done && m.Offset+1 >= st.hwm {
						st.done = true
						caughtUp()
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
}
