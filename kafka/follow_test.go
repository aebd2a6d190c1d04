package kafka

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A follower is ready once it has applied what the topic held when it connected (an empty topic: at once), hands
// records over in order with a tombstone's value nil, and goes on following what is written later.
func TestFollowerCatchesUpThenFollows(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "ctl", "empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := Config{Brokers: c.ListenAddrs(), Partitions: 1, Replication: 1}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := k.NewProducer("test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(key, value string) {
		t.Helper()
		r := &kgo.Record{Topic: "ctl", Key: []byte(key)}
		if value != "" {
			r.Value = []byte(value)
		}
		if err := w.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "1")
	write("b", "2")
	write("a", "") // tombstone

	var mu sync.Mutex
	seen := map[string][]byte{}
	var order []string
	f := k.Follow("ctl", func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(r.Key)] = r.Value
		order = append(order, string(r.Key))
	}, log)
	empty := k.Follow("empty", func(*kgo.Record) { t.Error("a record on an empty topic") }, log)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, fol := range []*Follower{f, empty} {
		wg.Add(1)
		go func() { defer wg.Done(); fol.Run(rctx) }()
	}
	defer func() { stop(); wg.Wait() }()

	if err := empty.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(order) != 3 || order[0] != "a" || order[1] != "b" || order[2] != "a" || seen["a"] != nil || string(seen["b"]) != "2" {
		t.Fatalf("ready after %v, values %q", order, seen)
	}
	mu.Unlock()

	write("c", "3")
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := string(seen["c"])
		mu.Unlock()
		if got == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a record written after catching up was not followed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
