// Package gokaadapter fits goka's processors to fraudpipe's Kafka settings: commits that never pass a record whose
// writes failed (ordered.go) and writes through franz-go (producer.go).
package gokaadapter

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

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
