package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/fraudpipe/fraudpipe/producer"
)

// raw produces cfg.Count payments to topic, which nobody processes, then consumes them all: the broker's own cost
// for the records the pipeline moves, on the same machine at the same time.
//
// It writes and reads with sarama on purpose, the one place outside goka that does: the ratio to this baseline has
// been measured with sarama at both ends since the first release, and goka's consumers, which read every record the
// pipeline processes, are sarama's. franz-go at both ends moves about 1.7 times as many records on the same machine
// (docs/performance.md), so a baseline on it would lower the ratio without the pipeline getting any slower.
func raw(ctx context.Context, cfg Config, topic string) (float64, error) {
	sc := cfg.Kafka.SaramaConfig("fraudpipe-bench-raw")
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewAsyncProducer(cfg.Kafka.Brokers, sc)
	if err != nil {
		return 0, fmt.Errorf("raw producer: %w", err)
	}
	var acked, failed sync.WaitGroup
	acked.Add(1)
	failed.Add(1)
	var firstErr error
	go func() {
		defer acked.Done()
		for range p.Successes() {
		}
	}()
	go func() {
		defer failed.Done()
		for e := range p.Errors() {
			if firstErr == nil {
				firstErr = e
			}
		}
	}()
	g := producer.NewGenerator(99, cfg.Accounts, 0.01, time.Now(), time.Hour)
	start := time.Now()
	for range cfg.Count {
		pay := g.Next()
		select {
		case p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(pay.AccountID), Value: sarama.ByteEncoder(producer.Encode(pay))}:
		case <-ctx.Done():
			p.AsyncClose()
			return 0, ctx.Err()
		}
	}
	p.AsyncClose() // flushes what is queued; Successes and Errors close when it is done
	acked.Wait()
	failed.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("raw produce: %w", firstErr)
	}
	c, err := sarama.NewConsumer(cfg.Kafka.Brokers, cfg.Kafka.SaramaConfig("fraudpipe-bench-raw"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for _, part := range parts {
		pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		hwm := pc.HighWaterMarkOffset()
		if hwm == 0 {
			pc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for m := range pc.Messages() {
				mu.Lock()
				got++
				mu.Unlock()
				if m.Offset+1 >= hwm {
					return
				}
			}
		}()
	}
	wg.Wait()
	if got < cfg.Count {
		return 0, fmt.Errorf("consumed %d of %d", got, cfg.Count)
	}
	return float64(cfg.Count) / time.Since(start).Seconds(), nil
}
