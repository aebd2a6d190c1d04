package notifier

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

// A dead letter is on notifications.dlq once DeadLetter returns, keyed by account id on the partition goka's
// hasher picks for it.
func TestDeadLettersAreWrittenKeyedByAccount(t *testing.T) {
	const partitions = 5
	k := testenv.Kafka(t, partitions, string(topics.NotificationsDLQ))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dlq, err := NewKafkaDeadLetters(k, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	accounts := []string{"acct_1", "acct_2", "acct_3", "acct_4", "acct_5", "acct_6"}
	for _, a := range accounts {
		if err := dlq.DeadLetter(ctx, topics.DeadDelivery{AlertID: "alert_" + a, AccountID: a, Channel: "email", Reason: "bounced"}); err != nil {
			t.Fatal(err)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(string(topics.NotificationsDLQ)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	hp := sarama.NewCustomHashPartitioner(fnv.New32a)(string(topics.NotificationsDLQ))
	for n := 0; n < len(accounts); {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var d topics.DeadDelivery
			if err := json.Unmarshal(r.Value, &d); err != nil || string(r.Key) != d.AccountID || d.AlertID != "alert_"+d.AccountID {
				t.Errorf("record %q: %+v %v", r.Key, d, err)
			}
			want, _ := hp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(r.Key)}, partitions)
			if r.Partition != want {
				t.Errorf("%s on partition %d, goka's hasher picks %d", r.Key, r.Partition, want)
			}
		})
	}
}
