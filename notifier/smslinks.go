package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// SMSLinks remembers the "Was this you?" link an SMS carried, so that the customer can answer by replying YES
// or NO to it (the console's /sms/reply webhook). A number's newest link is the one a reply answers.
type SMSLinks interface {
	Remember(ctx context.Context, phone, token string) error
}

// KafkaSMSLinks writes the links to the compacted sms-confirmations topic, keyed by an HMAC of the number.
//
// Why a topic and not the notifier's Redis: every console instance must find the link of any number, and the
// consoles already read Kafka but have no Redis; a compacted topic keeps the newest link per number across
// restarts, and each console rebuilds its index from it at start (kafka.Follower), with no second store to run.
type KafkaSMSLinks struct {
	client *kgo.Client
	signer *confirm.Signer
	now    func() time.Time
}

// NewKafkaSMSLinks returns an SMSLinks on the cluster's producer settings; signer (the confirmation key's) keys
// the records.
func NewKafkaSMSLinks(cfg kafka.Config, signer *confirm.Signer, log *slog.Logger) (*KafkaSMSLinks, error) {
	client, err := cfg.NewProducer("fraudpipe-notifier-sms-links", log)
	if err != nil {
		return nil, fmt.Errorf("sms links producer: %w", err)
	}
	return &KafkaSMSLinks{client: client, signer: signer, now: time.Now}, nil
}

// Remember implements SMSLinks; it returns once the broker has the record.
func (k *KafkaSMSLinks) Remember(ctx context.Context, phone, token string) error {
	b, err := json.Marshal(topics.SMSConfirmation{Token: token, SentAt: k.now().UTC()})
	if err != nil {
		return fmt.Errorf("encode sms link: %w", err)
	}
	r := &kgo.Record{Topic: topics.SMSConfirmations, Key: []byte(k.signer.PhoneKey(phone)), Value: b}
	if err := k.client.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("publish sms link: %w", err)
	}
	return nil
}

// Close closes the producer.
func (k *KafkaSMSLinks) Close() { k.client.Close() }
