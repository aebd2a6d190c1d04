package testenv

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudpipe/fraudpipe/kafka"
)

// Kafka starts an in-process Kafka-protocol broker (kfake) for the test, with the topics topics seeded with
// partitions partitions each, and returns the settings that reach it: partitions per created topic, one replica,
// 1 ms batching. It stops when the test ends.
func Kafka(t testing.TB, partitions int32, topics ...string) kafka.Config {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return kafka.Config{Brokers: c.ListenAddrs(), Partitions: int(partitions), Replication: 1, Flush: time.Millisecond}
}
