package notifier

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

// A replication attempt that fails (here: the customers topic does not exist yet) is tried again until it
// succeeds. The replica is then ready once it holds the topic as it was, the newest record of each account, with
// a tombstone deleting one, and it follows later records. A second replicator on the same Redis resumes from the
// offsets there.
func TestReplicatorRetriesCatchesUpAndFollows(t *testing.T) {
	k := testenv.Kafka(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rds := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	store := NewStore(rdb, log, nil)

	r, err := NewReplicator(k, store, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	testenv.WaitFor(t, 30*time.Second, "a failed attempt", func() bool {
		return strings.Contains(logs.String(), "customers replication stopped; restarting")
	})

	if err := k.EnsureTopics(ctx, []topics.Spec{{Name: string(topics.Customers), Compacted: true, Retention: -1}}); err != nil {
		t.Fatal(err)
	}
	w, err := k.NewProducer("test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(account, email string) {
		t.Helper()
		rec := &kgo.Record{Topic: string(topics.Customers), Key: []byte(account)}
		if email != "" {
			rec.Value = []byte(`{"account_id":"` + account + `","email":"` + email + `"}`)
		}
		if err := w.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	write("acct_1", "old@example.com")
	write("acct_2", "two@example.com")
	write("acct_1", "new@example.com")
	write("acct_2", "") // tombstone
	for i := range 20 {
		write("acct_x"+string(rune('a'+i)), "x@example.com") // spread over the partitions
	}

	email := func(account string) string {
		t.Helper()
		cu, err := store.customer(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		if cu == nil {
			return ""
		}
		return cu.Email
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := r.Ready(wctx); err != nil {
		t.Fatalf("the replica never became ready: %v\n%s", err, logs.String())
	}
	if got := email("acct_1"); got != "new@example.com" {
		t.Errorf("acct_1: %q", got)
	}
	if got := email("acct_2"); got != "" {
		t.Errorf("acct_2 was deleted on the topic, the replica has %q", got)
	}
	if got := email("acct_xt"); got != "x@example.com" {
		t.Errorf("acct_xt: %q", got)
	}
	write("acct_3", "three@example.com")
	testenv.WaitFor(t, 30*time.Second, "a later record replicated", func() bool { return email("acct_3") == "three@example.com" })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A new replicator resumes from the offsets in Redis and is ready at once.
	before, err := store.replicatedOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewReplicator(k, store, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop = context.WithCancel(ctx)
	defer stop()
	go r2.Run(rctx)
	if err := r2.Ready(wctx); err != nil {
		t.Fatal(err)
	}
	after, _ := store.replicatedOffsets(ctx)
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("offsets before %v, after %v", before, after)
	}
	for p, o := range before {
		if after[p] != o {
			t.Fatalf("offsets before %v, after %v", before, after)
		}
	}
}
