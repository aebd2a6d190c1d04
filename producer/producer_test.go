package producer

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The producer command puts every key on the partition goka's hasher picks (sarama's hash partitioner with FNV-1a),
// where the detector reads the account's state; every record is acknowledged by Close, including those queued
// under a context that ended before they were written.
func TestSenderPlacesKeysWhereGokaReadsThem(t *testing.T) {
	const partitions = 7
	k := testenv.Kafka(t, partitions, "payments")
	s, err := NewSender(k, "producer-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	const n = 2000
	for i := range n {
		if err := s.Send(ctx, "payments", fmt.Sprintf("acct_%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := s.Send(ctx, "payments", "acct_late", nil); err == nil {
		t.Error("a send under an ended context was queued")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Acked() != n {
		t.Fatalf("%d of %d records acknowledged", s.Acked(), n)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics("payments"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	hp := sarama.NewCustomHashPartitioner(fnv.New32a)("payments")
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	used := map[int32]bool{}
	for got := 0; got < n; {
		fs := cl.PollFetches(rctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			want, _ := hp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(r.Key)}, partitions)
			if r.Partition != want {
				t.Fatalf("%s written to partition %d; goka reads it from %d", r.Key, r.Partition, want)
			}
			used[want] = true
		})
	}
	if len(used) != partitions {
		t.Fatalf("the keys used %d of %d partitions", len(used), partitions)
	}
}
