package notifier

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/fraudpipe/fraudpipe/topics"
)

// KafkaDeadLetters publishes failed deliveries to notifications.dlq, keyed by account id.
type KafkaDeadLetters struct{ p sarama.SyncProducer }

// NewKafkaDeadLetters connects a producer with the given config.
func NewKafkaDeadLetters(brokers []string, cfg *sarama.Config) (*KafkaDeadLetters, error) {
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &KafkaDeadLetters{p: p}, nil
}

// DeadLetter implements DeadLetters; it returns once the broker has the record.
func (k *KafkaDeadLetters) DeadLetter(_ context.Context, d topics.DeadDelivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode dead delivery: %w", err)
	}
	_, _, err = k.p.SendMessage(&sarama.ProducerMessage{Topic: string(topics.NotificationsDLQ), Key: sarama.StringEncoder(d.AccountID), Value: sarama.ByteEncoder(b)})
	if err != nil {
		return fmt.Errorf("publish dead delivery: %w", err)
	}
	return nil
}

// Close closes the producer.
func (k *KafkaDeadLetters) Close() error { return k.p.Close() }
