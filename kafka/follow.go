package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
)

// Follower reads a small compacted control topic (rulesets, lists) from its beginning and keeps following it,
// handing every record to apply in partition order. Unlike a goka view it needs no local storage and tells its
// owner when it has caught up, which is what a detector waits for before it scores anything.
type Follower struct {
	cfg   Config
	topic string
	apply func(*sarama.ConsumerMessage)
	log   *slog.Logger

	ready     chan struct{}
	readyOnce sync.Once
}

// Follow returns a follower of topic; Run starts it. apply is called from one goroutine at a time.
func (c Config) Follow(topic string, apply func(*sarama.ConsumerMessage), log *slog.Logger) *Follower {
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

// Run follows the topic until ctx is done, reconnecting after errors (a broker restart).
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
	sc := f.cfg.SaramaConfig("fraudpipe-follow-" + f.topic)
	client, err := sarama.NewClient(f.cfg.Brokers, sc)
	if err != nil {
		return err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	parts, err := client.Partitions(f.topic)
	if err != nil {
		return err
	}
	pending := 0 // partitions still behind their end as of the first connect
	behind := map[int32]int64{}
	for _, p := range parts {
		end, err := client.GetOffset(f.topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		if _, ok := next[p]; !ok {
			next[p] = sarama.OffsetOldest
		}
		start := next[p]
		if start == sarama.OffsetOldest {
			if start, err = client.GetOffset(f.topic, p, sarama.OffsetOldest); err != nil {
				return err
			}
		}
		// Kafka never compacts the active segment, so the record before the end is still there to be read.
		if start < end {
			behind[p] = end
			pending++
		}
	}
	if pending == 0 {
		f.readyOnce.Do(func() { close(f.ready) })
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan *sarama.ConsumerMessage)
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(f.topic, p, next[p])
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			pc, err = consumer.ConsumePartition(f.topic, p, sarama.OffsetOldest) // compacted away meanwhile
		}
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case m := <-pc.Messages():
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case e := <-pc.Errors():
					errs <- e
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case m := <-msgs:
			f.apply(m)
			next[m.Partition] = m.Offset + 1
			if end, ok := behind[m.Partition]; ok && m.Offset+1 >= end {
				delete(behind, m.Partition)
				if len(behind) == 0 {
					f.readyOnce.Do(func() { close(f.ready) })
				}
			}
		}
	}
}
