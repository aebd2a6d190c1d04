package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/logging"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/processors/cases"
	"github.com/fraudpipe/fraudpipe/processors/confirmations"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// defaultBrokers is where the embedded broker of `fraudpipe run` listens.
const defaultBrokers = "127.0.0.1:9092"

// envOptions makes every flag settable as FRAUDPIPE_<FLAG>.
var envOptions = []ff.Option{ff.WithEnvVarPrefix("FRAUDPIPE")}

// kafkaFlags are the cluster settings every Kafka-facing subcommand takes.
type kafkaFlags struct {
	brokers     string
	partitions  int
	replication int
	flush       time.Duration
	compression string
	partitioner string
	security    kafka.Security
}

func (k *kafkaFlags) register(fs *flag.FlagSet, brokersDefault, brokersHelp string) {
	fs.StringVar(&k.brokers, "brokers", brokersDefault, brokersHelp)
	fs.IntVar(&k.partitions, "partitions", 6, "partitions of the topics the pipeline creates (payments, alerts, tables); more partitions allow more instances")
	fs.IntVar(&k.replication, "replication", 1, "replication factor of created topics (3 on a production cluster)")
	fs.DurationVar(&k.flush, "flush-interval", time.Millisecond, "how long producers batch records before sending: latency against throughput")
	fs.StringVar(&k.compression, "compression", "", "compression of produced batches: none, gzip, snappy, lz4 or zstd (default lz4; none for fraudpipe run's embedded broker, which shares the process)")
	fs.StringVar(&k.partitioner, "partitioner", "", "how your producers place payments by key: murmur2 (Java clients, Kafka Streams), crc32 (librdkafka, kcat) or fnv1a (goka, sarama); payments placed otherwise take an extra hop. A new pipeline records it (default murmur2); unset, a part uses the recorded one")
	fs.StringVar(&k.security.SASLMechanism, "kafka-sasl", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from "+kafka.EnvPassword+")")
	fs.StringVar(&k.security.User, "kafka-user", "", "SASL user")
	fs.BoolVar(&k.security.TLS, "kafka-tls", false, "connect to the brokers over TLS")
	fs.StringVar(&k.security.CAFile, "kafka-ca-file", "", "PEM CA certificates for the brokers' TLS (default: system roots)")
	fs.StringVar(&k.security.CertFile, "kafka-cert-file", "", "PEM client certificate, for brokers that require one")
	fs.StringVar(&k.security.KeyFile, "kafka-key-file", "", "PEM key of the client certificate")
}

func (k *kafkaFlags) config() kafka.Config {
	var brokers []string
	for b := range strings.SplitSeq(k.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	sec := k.security
	sec.Password = os.Getenv(kafka.EnvPassword)
	return kafka.Config{Brokers: brokers, Partitions: k.partitions, Replication: k.replication, Flush: k.flush, Compression: k.compression, Partitioner: kafka.Partitioner(k.partitioner), Security: sec}
}

// logFlags configure the diagnostic log (stderr).
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	level, err := logging.ParseLevel(l.level)
	if err != nil {
		return nil, err
	}
	log, err := logging.New(w, l.format, level)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(log) // goka's and sarama's standard-library logging goes through it too
	return log, nil
}

// alertLog opens where the notifier's log channel writes: stdout, or a file appended to.
func alertLog(path, format string) (*slog.Logger, func(), error) {
	w, closeFn := io.Writer(os.Stdout), func() {}
	if path != "" && path != "-" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open alert log: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	log, err := logging.New(w, format, slog.LevelInfo)
	if err != nil {
		return nil, nil, err
	}
	return log, closeFn, nil
}

// pipelineTopics are all the topics the pipeline needs, group tables and loops included.
func pipelineTopics() []topics.Spec {
	return topics.Specs([]string{string(detector.Table), string(confirmations.Table), string(cases.Table)}, []string{detector.Loop})
}

// createPipeline waits for the cluster, agrees on the pipeline's partitioner (recording it when this is the first
// part of a new pipeline, before any state topic exists) and creates the pipeline's topics. It returns k placing
// keys by it.
func createPipeline(ctx context.Context, k kafka.Config, log *slog.Logger) (kafka.Config, error) {
	if err := k.WaitForCluster(ctx, log); err != nil {
		return k, err
	}
	p, err := k.AgreePartitioner(ctx, k.Partitioner, string(detector.Table), log)
	if err != nil {
		return k, err
	}
	k.Partitioner = p
	return k, k.EnsureTopics(ctx, pipelineTopics())
}

// preflight checks the record flags and every file a command will use before it starts anything (a broker, a listener, a connection)
// and reports every problem at once: a notifier config missing a secret must not surface only after the broker
// and the detector have started. An empty rulesPath or a nil notifier skips that check.
func preflight(rulesPath string, nf *notifierFlags, records recordFlags) error {
	var errs []error
	if err := records.validate(); err != nil {
		errs = append(errs, err)
	}
	if rulesPath != "" {
		if _, err := rules.LoadFile(rulesPath); err != nil {
			errs = append(errs, err)
		}
	}
	if nf != nil {
		if _, err := notifier.LoadConfig(nf.config); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("configuration, nothing started:\n%w", errors.Join(errs...))
	}
	return nil
}
