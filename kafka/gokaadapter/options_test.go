package gokaadapter

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/kafka"
)

// A view finds every key where the processors' producer wrote it, whatever the pipeline's partitioner: a console
// looking an account up on another partition would find no case.
func TestViewsFindKeysWhereTheProducerPlacedThem(t *testing.T) {
	const partitions = 5
	for _, pt := range []kafka.Partitioner{kafka.Murmur2, kafka.CRC32, ""} {
		t.Run(string(pt), func(t *testing.T) {
			brokers := testenv.Kafka(t, partitions, "v-table").Brokers
			c := kafka.Config{Brokers: brokers, Partitions: partitions, Replication: 1, Flush: time.Millisecond, Partitioner: pt}
			p := newProducerWith(t, c, fnv.New32a, nil)
			defer p.Close()
			var last *goka.Promise
			for i := range 200 {
				k := fmt.Sprintf("acct_%d", i)
				last = p.Emit("v-table", k, []byte(k))
			}
			if e := await(t, last); e.err != nil {
				t.Fatal(e.err)
			}
			v, err := goka.NewView(brokers, "v-table", new(codec.String), ViewOptions(c, "view-test", slog.New(slog.DiscardHandler))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- v.Run(ctx) }()
			defer func() { cancel(); <-done }()
			deadline := time.Now().Add(30 * time.Second)
			for !v.Recovered() {
				if time.Now().After(deadline) {
					t.Fatal("the view did not recover within 30 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i := range 200 {
				k := fmt.Sprintf("acct_%d", i)
				if got, err := v.Get(k); err != nil || got != k {
					t.Fatalf("key %q: got %v, %v", k, got, err)
				}
			}
		})
	}
}
