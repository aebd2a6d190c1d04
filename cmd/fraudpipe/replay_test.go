package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

// A backtest replays the payments topic partition by partition, each in order, skipping control records, from the
// start or from the first payment written at or after --from.
func TestReplayTopicFromTheStartAndFromATime(t *testing.T) {
	k := testenv.Kafka(t, 2, string(topics.Payments))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Without a delivery timeout, which franz-go counts from a record's timestamp.
	w, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	old := time.Now().Add(-2 * time.Hour)
	for p := range int32(2) {
		for i := range 4 {
			r := &kgo.Record{Topic: string(topics.Payments), Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)}
			if i < 2 {
				r.Timestamp = old
			}
			if err := w.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		marker := &kgo.Record{Topic: string(topics.Payments), Partition: p, Value: []byte("marker"),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderControl, Value: []byte(topics.ControlRuleset)}}}
		if err := w.ProduceSync(ctx, marker).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for from, want := range map[string][]string{
		"":   {"p0-0", "p0-1", "p0-2", "p0-3", "p1-0", "p1-1", "p1-2", "p1-3"},
		"1h": {"p0-2", "p0-3", "p1-2", "p1-3"},
	} {
		var got []string
		if err := replayTopic(ctx, k, string(topics.Payments), from, func(b []byte) { got = append(got, string(b)) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("--from %q replayed %v, want %v", from, got, want)
		}
	}
}
