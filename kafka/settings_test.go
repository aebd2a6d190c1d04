package kafka

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudpipe/fraudpipe/topics"
)

func fakeCluster(t *testing.T) Config {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return Config{Brokers: c.ListenAddrs(), Partitions: 3, Replication: 1, Flush: time.Millisecond}
}

func TestANewPipelineRecordsItsPartitionerAndRefusesAnother(t *testing.T) {
	ctx, log := context.Background(), slog.New(slog.DiscardHandler)
	c := fakeCluster(t)
	p, err := c.AgreePartitioner(ctx, "", "detector-table", log)
	if err != nil || p != DefaultPartitioner {
		t.Fatalf("first part: %q, %v; want the default %q", p, err, DefaultPartitioner)
	}
	if p, err := c.AgreePartitioner(ctx, "", "detector-table", log); err != nil || p != DefaultPartitioner {
		t.Fatalf("a part without the setting: %q, %v; want the recorded %q", p, err, DefaultPartitioner)
	}
	if p, err := c.AgreePartitioner(ctx, Murmur2, "detector-table", log); err != nil || p != Murmur2 {
		t.Fatalf("a part with the recorded setting: %q, %v", p, err)
	}
	_, err = c.AgreePartitioner(ctx, CRC32, "detector-table", log)
	if err == nil || !strings.Contains(err.Error(), "places accounts with partitioner murmur2") || !strings.Contains(err.Error(), "not crc32") {
		t.Fatalf("a part with another partitioner: %v", err)
	}

	explicit := fakeCluster(t)
	if p, err := explicit.AgreePartitioner(ctx, CRC32, "detector-table", log); err != nil || p != CRC32 {
		t.Fatalf("a new pipeline told crc32: %q, %v", p, err)
	}
}

// Topics made before the setting existed were placed with FNV-1a, goka's default: such a pipeline keeps it.
func TestAPipelineFromBeforeTheSettingKeepsFNV1a(t *testing.T) {
	ctx, log := context.Background(), slog.New(slog.DiscardHandler)
	c := fakeCluster(t)
	if err := c.EnsureTopics(ctx, []topics.Spec{{Name: "detector-table", Compacted: true, Retention: -1}}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.AgreePartitioner(ctx, "", "detector-table", log); err != nil || p != FNV1a {
		t.Fatalf("existing pipeline: %q, %v; want fnv1a", p, err)
	}
	if _, err := c.AgreePartitioner(ctx, Murmur2, "detector-table", log); err == nil {
		t.Fatal("an existing FNV-1a pipeline accepted murmur2")
	}
}

// Parts of a new pipeline starting at once, each with its own idea, end up with one placement: the first record
// decides, and those that wanted another are refused.
func TestPartsRacingToRecordAgreeOnTheFirst(t *testing.T) {
	ctx, log := context.Background(), slog.New(slog.DiscardHandler)
	c := fakeCluster(t)
	wants := []Partitioner{Murmur2, CRC32, FNV1a, "", Murmur2, CRC32}
	got := make([]Partitioner, len(wants))
	errs := make([]error, len(wants))
	var wg sync.WaitGroup
	for i, w := range wants {
		wg.Go(func() { got[i], errs[i] = c.AgreePartitioner(ctx, w, "detector-table", log) })
	}
	wg.Wait()
	decided, err := c.AgreePartitioner(ctx, "", "detector-table", log)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range wants {
		switch {
		case errs[i] == nil && got[i] != decided:
			t.Errorf("part %d (wanted %q) got %q, the pipeline decided %q", i, w, got[i], decided)
		case errs[i] != nil && (w == "" || w == decided):
			t.Errorf("part %d (wanted %q) refused although the pipeline decided %q: %v", i, w, decided, errs[i])
		case errs[i] == nil && w != "" && w != decided:
			t.Errorf("part %d wanted %q and started although the pipeline decided %q", i, w, decided)
		}
	}
}
