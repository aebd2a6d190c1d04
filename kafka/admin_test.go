package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudpipe/fraudpipe/topics"
)

// EnsureTopics creates what is missing with the pipeline's partitions, replication and retention or compaction,
// leaves what exists alone (a second call changes nothing), and refuses a copartitioned topic whose partition
// count differs from the pipeline's. ClusterID and PartitionCount read what the cluster reports.
func TestEnsureTopicsAndClusterQueries(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID("cluster-1"), kfake.SeedTopics(2, "odd"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := Config{Brokers: c.ListenAddrs(), Partitions: 3, Replication: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	specs := []topics.Spec{
		{Name: "payments", Retention: time.Hour},
		{Name: "rules", Compacted: true, Partitions: 1},
	}
	for range 2 {
		if err := k.EnsureTopics(ctx, specs); err != nil {
			t.Fatal(err)
		}
	}
	for topic, want := range map[string]int32{"payments": 3, "rules": 1, "odd": 2} {
		if n, err := k.PartitionCount(ctx, topic); err != nil || n != want {
			t.Errorf("%s: %d partitions (%v), want %d", topic, n, err, want)
		}
	}
	if _, err := k.PartitionCount(ctx, "missing"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("partitions of a missing topic: %v", err)
	}
	adm, err := k.admin("test")
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	rcs, err := adm.DescribeTopicConfigs(ctx, "payments", "rules")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string][2]string{"payments": {"retention.ms", "3600000"}, "rules": {"cleanup.policy", "compact"}} {
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, cfg := range rc.Configs {
			if cfg.Key == want[0] {
				got = cfg.MaybeValue()
			}
		}
		if got != want[1] {
			t.Errorf("%s: %s = %q, want %q", topic, want[0], got, want[1])
		}
	}
	err = k.EnsureTopics(ctx, []topics.Spec{{Name: "odd", Retention: time.Hour}})
	if err == nil || !strings.Contains(err.Error(), "topic odd has 2 partitions, the pipeline is configured for 3: use --partitions 2 or recreate the topic") {
		t.Errorf("partition count mismatch: %v", err)
	}
	if id, err := k.ClusterID(ctx); err != nil || id != "cluster-1" {
		t.Errorf("cluster id %q, %v", id, err)
	}
}
