package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Follower reads a small compacted control topic (rulesets, lists) from its beginning and keeps following it,
// handing every record to apply in partition order. Unlike a goka view it needs no local storage and tells its
// owner when it has caught up, which is what a detector waits for before it scores anything.
type Follower struct {
	cfg   Config
	topic string
	apply func(*kgo.Record)
	log   *slog.Logger

	ready     chan struct{}
	readyOnce sync.Once
}

// Follow returns a follower of topic; Run starts it. apply is called from one goroutine at a time.
func (c Config) Follow(topic string, apply func(*kgo.Record), log *slog.Logger) *Follower {
	return &Follower{cfg: c, topic: topic, apply: apply, log: log, ready: make(chan struct{})}
}

// Ready is closed once every record that existed when the follower first connected has been applied.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// WaitReady blocks until Ready or ctx is done.
func (f *Follower) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("catch up with topic %s: %w", f.topic, ctx.Err())
	}
}

// Run follows the topic until ctx is done. The client rides out a broker restart by itself; after an error it
// reports, Run starts a new one where the last left off.
func (f *Follower) Run(ctx context.Context) error {
	next := map[int32]int64{}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 5*time.Second
	for {
		err := f.follow(ctx, next)
		if ctx.Err() != nil {
			return nil
		}
		wait := b.NextBackOff()
		f.log.Warn("following control topic", "topic", f.topic, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (f *Follower) follow(ctx context.Context, next map[int32]int64) error {
	opts, err := f.cfg.ClientOptions("fraudpipe-follow-"+f.topic, f.log)
	if err != nil {
		return err
	}
	// A position compacted away meanwhile resumes at the log start, as one never read does.
	client, err := kgo.NewClient(append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	starts, err := admin.ListStartOffsets(ctx, f.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("start offsets of %s: %w", f.topic, err)
	}
	ends, err := admin.ListEndOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", f.topic, err)
	}
	from := map[int32]kgo.Offset{}
	behind := map[int32]int64{} // partitions still behind their end as of the first connect
	for p, end := range ends[f.topic] {
		start, ok := next[p]
		if !ok {
			start = starts[f.topic][p].Offset
		}
		from[p] = kgo.NewOffset().At(start)
		// Kafka never compacts the active segment, so the record before the end is still there to be read.
		if start < end.Offset {
			behind[p] = end.Offset
		}
	}
	if len(behind) == 0 {
		f.readyOnce.Do(func() { close(f.ready) })
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.topic: from})
	for {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			f.apply(r)
			next[r.Partition] = r.Offset + 1
			if end, ok := behind[r.Partition]; ok && r.Offset+1 >= end {
				delete(behind, r.Partition)
				if len(behind) == 0 {
					f.readyOnce.Do(func() { close(f.ready) })
				}
			}
		})
		var err error
		fetches.EachError(func(_ string, p int32, e error) {
			var lost *kgo.ErrDataLoss
			if errors.As(e, &lost) {
				// The client resumed where the broker's log allows; a record read again changes nothing when applied.
				f.log.Warn("control topic lost records", "topic", f.topic, "partition", p, "err", e)
				return
			}
			err = errors.Join(err, e)
		})
		if err != nil {
			return err
		}
	}
}
