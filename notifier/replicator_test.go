package notifier

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// When one partition cannot be consumed, a replication attempt stops the partition consumers it had started
// before it is tried again: none is left running beside the next attempt's (which would find its partitions
// "already being consumed" and fail for ever).
func TestReplicatorLeavesNoConsumerRunningWhenAPartitionFails(t *testing.T) {
	b, err := embedded.StartBroker(filepath.Join(t.TempDir(), "kafka"), "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k := kafka.Config{Brokers: []string{b.Addr()}, Partitions: 3, Replication: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k.EnsureTopics(ctx, []topics.Spec{{Name: string(topics.Customers), Compacted: true, Retention: -1}}); err != nil {
		t.Fatal(err)
	}
	rds := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r, err := NewReplicator(k.Brokers, k.SaramaConfig("replicator-test"), NewStore(rdb, log, nil), log)
	if err != nil {
		t.Fatal(err)
	}
	// Partition 2 is taken, so every attempt fails there, after partitions 0 and 1 have started.
	held, err := r.consumer.ConsumePartition(string(topics.Customers), 2, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	testenv.WaitFor(t, 30*time.Second, "two failed attempts", func() bool {
		return strings.Count(logs.String(), "customers replication stopped; restarting") >= 2
	})
	for _, p := range []string{"customers/0", "customers/1"} {
		if strings.Contains(logs.String(), "consume "+p) {
			t.Fatalf("an attempt found %s still consumed by the previous one:\n%s", p, logs.String())
		}
	}
	// Once the partition is free, replication recovers and the replica becomes ready.
	held.Close()
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if err := r.Ready(rctx); err != nil {
		t.Fatalf("the replica never became ready: %v\n%s", err, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
