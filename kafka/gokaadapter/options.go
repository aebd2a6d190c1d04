// Package gokaadapter fits goka's processors to fraudpipe's Kafka settings: commits that never pass a record whose
// writes failed (ordered.go) and writes through franz-go (producer.go).
package gokaadapter

import (
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/fraudpipe/fraudpipe/kafka"
)

// ProcessorOptions returns the goka options that make a processor use this configuration for every client it
// builds. Each builder gets its own copy: goka writes the partitioner into the config it is given. m, if not nil,
// follows the processor's producer.
func ProcessorOptions(c kafka.Config, clientID string, log *slog.Logger, m *ProducerMetrics) []goka.ProcessorOption {
	cp := func() *sarama.Config { sc := *c.SaramaConfig(clientID); return &sc }
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = c.Replication
	tmc.Stream.Replication = c.Replication
	tmc.Stream.Retention = 24 * time.Hour
	return []goka.ProcessorOption{
		goka.WithClientID(clientID),
		// Commits never pass a record whose emits failed: see ordered.go.
		goka.WithConsumerGroupBuilder(orderedGroupBuilder(cp())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cp())),
		// Writes go through franz-go rather than sarama (producer.go).
		goka.WithProducerBuilder(ProducerBuilder(c, clientID, log, m)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cp(), tmc)),
		goka.WithLogger(gokaLogger{log}),
	}
}

// gokaLogger passes goka's log lines to slog at debug level.
type gokaLogger struct{ log *slog.Logger }

func (l gokaLogger) Print(v ...any)                 { l.log.Debug(fmt.Sprint(v...)) }
func (l gokaLogger) Println(v ...any)               { l.log.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }
func (l gokaLogger) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l gokaLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// ViewOptions returns the goka options that make a view read a table with this configuration. The view finds a
// key's partition the way the table's writer placed it (kafka.Config.Placement), and keeps the table in memory:
// a view is a query cache, rebuilt from the changelog at each start.
func ViewOptions(c kafka.Config, clientID string, log *slog.Logger) []goka.ViewOption {
	cp := func() *sarama.Config { sc := *c.SaramaConfig(clientID); return &sc }
	opts := []goka.ViewOption{
		goka.WithViewClientID(clientID),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cp())),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cp(), goka.NewTopicManagerConfig())),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewLogger(gokaLogger{log}),
		goka.WithViewAutoReconnect(),
	}
	if c.Partitioner != "" {
		p, n := c.Partitioner, int32(c.Partitions)
		opts = append(opts, goka.WithViewHasher(func() hash.Hash32 { return &partitionHash{p: p, n: n} }))
	}
	return opts
}

// partitionHash is a goka hasher whose sum is the key's partition by a kafka.Partitioner: goka takes the sum
// modulo the partition count, which leaves a partition number as it is. It needs the topic's partition count,
// which kafka.Config.EnsureTopics has checked.
type partitionHash struct {
	p   kafka.Partitioner
	n   int32
	key []byte
}

func (h *partitionHash) Write(b []byte) (int, error) { h.key = append(h.key, b...); return len(b), nil }
func (h *partitionHash) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint32(b, h.Sum32()) }
func (h *partitionHash) Sum32() uint32               { return uint32(h.p.Partition(string(h.key), h.n)) }
func (h *partitionHash) Reset()                      { h.key = h.key[:0] }
func (h *partitionHash) Size() int                   { return 4 }
func (h *partitionHash) BlockSize() int              { return 1 }
