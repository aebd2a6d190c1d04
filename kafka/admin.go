package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/fraudpipe/fraudpipe/topics"
)

// EnsureTopics creates the topics that do not exist yet and checks the partition count of those that do: goka
// needs a group's inputs, loop and table copartitioned, and a mismatch would silently split per-account state.
func (c Config) EnsureTopics(ctx context.Context, specs []topics.Spec) error {
	admin, err := c.admin()
	if err != nil {
		return err
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, s := range specs {
		want := c.Partitions
		if s.Partitions > 0 {
			want = s.Partitions
		}
		if d, ok := existing[s.Name]; ok {
			if s.Partitions > 0 {
				continue // a fixed-size control topic: its count does not follow the pipeline's
			}
			if int(d.NumPartitions) != want {
				return fmt.Errorf("topic %s has %d partitions, the pipeline is configured for %d: use --partitions %d or recreate the topic",
					s.Name, d.NumPartitions, want, d.NumPartitions)
			}
			continue
		}
		cfg := map[string]*string{}
		set := func(k, v string) { cfg[k] = &v }
		switch {
		case s.Compacted:
			set("cleanup.policy", "compact")
		case s.Retention < 0:
			set("retention.ms", "-1")
		default:
			set("retention.ms", strconv.FormatInt(s.Retention.Milliseconds(), 10))
		}
		err := admin.CreateTopic(s.Name, &sarama.TopicDetail{
			NumPartitions: int32(want), ReplicationFactor: int16(c.Replication), ConfigEntries: cfg,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", s.Name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// ClusterID asks the cluster for its id. Local state (goka's storage) is kept per cluster id, so storage left
// over from a broker whose data is gone is never mistaken for state of the current one.
func (c Config) ClusterID() (string, error) {
	client, err := sarama.NewClient(c.Brokers, c.SaramaConfig("fraudpipe-cluster-id"))
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", strings.Join(c.Brokers, ","), err)
	}
	defer client.Close()
	b, err := client.Controller()
	if err != nil {
		return "", fmt.Errorf("find controller: %w", err)
	}
	resp, err := b.GetMetadata(sarama.NewMetadataRequest(client.Config().Version, nil))
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if resp.ClusterID == nil || *resp.ClusterID == "" {
		return "", errors.New("the cluster did not report an id")
	}
	return *resp.ClusterID, nil
}

// PartitionCount returns the number of partitions of a topic.
func (c Config) PartitionCount(topic string) (int32, error) {
	client, err := sarama.NewClient(c.Brokers, c.SaramaConfig("fraudpipe-metadata"))
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	ps, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return int32(len(ps)), nil
}

// WaitForCluster retries until the brokers answer, so components can start before the broker does.
func (c Config) WaitForCluster(ctx context.Context, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for {
		admin, err := c.admin()
		if err == nil {
			admin.Close()
			return nil
		}
		log.Warn("waiting for kafka", "brokers", strings.Join(c.Brokers, ","), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s not reachable: %w", strings.Join(c.Brokers, ","), err)
		case <-time.After(time.Second):
		}
	}
}

func (c Config) admin() (sarama.ClusterAdmin, error) {
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.SaramaConfig("fraudpipe-admin"))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(c.Brokers, ","), err)
	}
	return admin, nil
}
