package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// KafkaDeadLetters publishes failed deliveries to notifications.dlq, keyed by account id.
type KafkaDeadLetters struct{ client *kgo.Client }

// NewKafkaDeadLetters returns a dead-letter writer on the cluster's producer settings; it connects on its first
// write.
func NewKafkaDeadLetters(cfg kafka.Config, log *slog.Logger) (*KafkaDeadLetters, error) {
	client, err := cfg.NewProducer("fraudpipe-notifier-dlq", log)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &KafkaDeadLetters{client: client}, nil
}

// DeadLetter implements DeadLetters; it returns once the broker has the record.
func (k *KafkaDeadLetters) DeadLetter(ctx context.Context, d topics.DeadDelivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode dead delivery: %w", err)
	}
	r := &kgo.Record{Topic: string(topics.NotificationsDLQ), Key: []byte(d.AccountID), Value: b}
	if err := k.client.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("publish dead delivery: %w", err)
	}
	return nil
}

// Close closes the producer.
func (k *KafkaDeadLetters) Close() error {
	k.client.Close()
	return nil
}
