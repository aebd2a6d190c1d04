package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultDeliveryTimeout is Config.DeliveryTimeout's default, the two minutes of Kafka's own producers
// (delivery.timeout.ms). Shorter outages, such as a broker restart, only delay the writes.
const DefaultDeliveryTimeout = 2 * time.Minute

// DeliveryTimeoutOrDefault is how long a write may wait for a broker that is away.
func (c Config) DeliveryTimeoutOrDefault() time.Duration {
	if c.DeliveryTimeout > 0 {
		return c.DeliveryTimeout
	}
	return DefaultDeliveryTimeout
}

// ClientOptions are the settings every franz-go client of fraudpipe starts from: the brokers, the security
// settings (the same as SaramaConfig's), the client id, batch compression and a logger.
func (c Config) ClientOptions(clientID string, log *slog.Logger) ([]kgo.Opt, error) {
	codec, err := c.kgoCodec()
	if err != nil {
		return nil, err
	}
	opts, err := c.Security.kgoOptions()
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(clientID),
		kgo.ProducerBatchCompression(codec),
		kgo.WithLogger(kgoLogger{log}),
	), nil
}

// ProducerOptions are ClientOptions for a client that writes. Its writes are idempotent, franz-go's default, with
// acks from all in-sync replicas: an acknowledged record survives the loss of the leader, and a retried batch lands
// once and in order. A write waits up to the delivery timeout for a broker that is away, then fails; franz-go counts
// that from the record's timestamp, so records are written without one of their own. A keyed record lands where
// the pipeline's processors place its key (Placement).
func (c Config) ProducerOptions(clientID string, log *slog.Logger) ([]kgo.Opt, error) {
	opts, err := c.ClientOptions(clientID, log)
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(c.Flush),
		kgo.RecordDeliveryTimeout(c.DeliveryTimeoutOrDefault()),
		kgo.RecordPartitioner(c.Placement(nil)),
	), nil
}

// NewProducer returns a client on ProducerOptions, extra options applied last. It connects on its first record.
func (c Config) NewProducer(clientID string, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.ProducerOptions(clientID, log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return cl, nil
}

func (c Config) kgoCodec() (kgo.CompressionCodec, error) {
	cc, err := c.codec()
	if err != nil {
		return kgo.NoCompression(), err
	}
	switch cc {
	case sarama.CompressionGZIP:
		return kgo.GzipCompression(), nil
	case sarama.CompressionSnappy:
		return kgo.SnappyCompression(), nil
	case sarama.CompressionLZ4:
		return kgo.Lz4Compression(), nil
	case sarama.CompressionZSTD:
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), nil
}

// kgoLogger passes franz-go's warnings and errors to slog; its info and debug lines (every connection and
// metadata refresh) go to debug.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		l.log.Warn(msg, keyvals...)
	default:
		l.log.Debug(msg, keyvals...)
	}
}
