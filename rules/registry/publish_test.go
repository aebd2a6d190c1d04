package registry

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Push writes the version, one marker into every payments partition, then the version with the markers' offsets;
// the same content again publishes nothing, and a rollback publishes the old content as the next version. List
// entries added and removed on the lists topic reach a follower.
func TestPushRollbackAndListsOnTheCluster(t *testing.T) {
	k := testenv.Kafka(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.EnsureTopics(ctx, topics.Specs(nil, nil)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	reg, lists := New(k, log), NewLists(k, log)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); reg.Run(rctx) }()
	go func() { defer wg.Done(); lists.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()
	if err := reg.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lists.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	bundle := func(limit string) rules.Bundle {
		return rules.Bundle{Name: "r.yaml", Data: []byte("thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: " + limit + ", currency: EUR, score: 60 }\n")}
	}
	v1, added, err := reg.Push(ctx, k, bundle("100"), Meta{Author: "a"})
	if err != nil || !added || v1.Version != 1 {
		t.Fatalf("push: %+v %v %v", v1, added, err)
	}
	if len(v1.Effective) != 3 {
		t.Fatalf("markers in %d partitions: %v", len(v1.Effective), v1.Effective)
	}
	if again, added, err := reg.Push(ctx, k, bundle("100"), Meta{}); err != nil || added || again.Version != 1 {
		t.Fatalf("the same content again: %+v %v %v", again, added, err)
	}
	if _, _, err := reg.Push(ctx, k, bundle("200"), Meta{}); err != nil {
		t.Fatal(err)
	}
	v3, err := reg.Rollback(ctx, k, 1, Meta{})
	if err != nil || v3.Version != 3 || v3.RolledBackFrom != 1 || v3.Digest != v1.Digest {
		t.Fatalf("rollback: %+v %v", v3, err)
	}
	if got, _, ok := reg.Latest(); !ok || got.Version != 3 || len(got.Effective) != 3 {
		t.Fatalf("the registry's latest: %+v", got)
	}

	// Each payments partition holds the three markers, at the offsets the versions record, as control records.
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(string(topics.Payments)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	markers := map[int32][]int64{}
	for n := 0; n < 9; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if len(r.Headers) != 1 || r.Headers[0].Key != topics.HeaderControl || string(r.Headers[0].Value) != topics.ControlRuleset {
				t.Errorf("payments/%d@%d: headers %v", r.Partition, r.Offset, r.Headers)
			}
			markers[r.Partition] = append(markers[r.Partition], r.Offset)
		})
	}
	for p := range int32(3) {
		if !slices.Equal(markers[p], []int64{0, 1, 2}) || v1.Effective[p] != 0 || v3.Effective[p] != 2 {
			t.Errorf("payments/%d: markers at %v; version 1 took effect at %d, version 3 at %d", p, markers[p], v1.Effective[p], v3.Effective[p])
		}
	}

	if err := UpdateLists(ctx, k, "blocked", []string{"x", "y"}, false); err != nil {
		t.Fatal(err)
	}
	if err := UpdateLists(ctx, k, "blocked", []string{"x"}, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Equal(lists.Entries("blocked"), []string{"y"}) {
		if time.Now().After(deadline) {
			t.Fatalf("list entries %v, want [y]", lists.Entries("blocked"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
