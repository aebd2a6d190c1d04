package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/topics"
)

// EnsureTopics creates the topics that do not exist yet and checks the partition count of those that do: goka
// needs a group's inputs, loop and table copartitioned, and a mismatch would silently split per-account state.
func (c Config) EnsureTopics(ctx context.Context, specs []topics.Spec) error {
	admin, err := c.admin("fraudpipe-admin")
	if err != nil {
		return err
	}
	defer admin.Close()
	existing, err := admin.ListTopics(ctx)
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
			if len(d.Partitions) != want {
				return fmt.Errorf("topic %s has %d partitions, the pipeline is configured for %d: use --partitions %d or recreate the topic",
					s.Name, len(d.Partitions), want, len(d.Partitions))
			}
			continue
		}
		cfg := map[string]*string{}
		switch {
		case s.Compacted:
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
		case s.Retention < 0:
			cfg["retention.ms"] = kadm.StringPtr("-1")
		default:
			cfg["retention.ms"] = kadm.StringPtr(strconv.FormatInt(s.Retention.Milliseconds(), 10))
		}
		resp, err := admin.CreateTopic(ctx, int32(want), int16(c.Replication), cfg, s.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				return fmt.Errorf("create topic %s: %w: %s", s.Name, err, resp.ErrMessage)
			}
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
func (c Config) ClusterID(ctx context.Context) (string, error) {
	admin, err := c.admin("fraudpipe-cluster-id")
	if err != nil {
		return "", err
	}
	defer admin.Close()
	m, err := admin.BrokerMetadata(ctx)
	if err != nil {
		return "", fmt.Errorf("metadata from %s: %w", strings.Join(c.Brokers, ","), err)
	}
	if m.Cluster == "" {
		return "", errors.New("the cluster did not report an id")
	}
	return m.Cluster, nil
}

// PartitionCount returns the number of partitions of a topic.
func (c Config) PartitionCount(ctx context.Context, topic string) (int32, error) {
	admin, err := c.admin("fraudpipe-metadata")
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	ts, err := admin.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	if err := ts[topic].Err; err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return int32(len(ts[topic].Partitions)), nil
}

// WaitForCluster retries until the brokers answer, so components can start before the broker does.
func (c Config) WaitForCluster(ctx context.Context, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	cl, err := c.client("fraudpipe-admin", log)
	if err != nil {
		return err
	}
	defer cl.Close()
	var last error
	// A broker answers only once the connection is up, TLS and SASL included. Asked every second for as long as ctx
	// lasts: a part may start long before its broker.
	_, err = backoff.Retry(ctx, func() (struct{}, error) { last = cl.Ping(ctx); return struct{}{}, last },
		backoff.WithBackOff(backoff.NewConstantBackOff(time.Second)), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, _ time.Duration) {
			log.Warn("waiting for kafka", "brokers", strings.Join(c.Brokers, ","), "err", err)
		}))
	if err != nil {
		return fmt.Errorf("kafka at %s not reachable: %w (%w)", strings.Join(c.Brokers, ","), last, err)
	}
	return nil
}

// admin returns an admin client. The queries without a logger of their own log through slog's default, which the
// command sets.
func (c Config) admin(clientID string) (*kadm.Client, error) {
	cl, err := c.client(clientID, slog.Default())
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// client returns a client on ClientOptions. It connects on its first request.
func (c Config) client(clientID string, log *slog.Logger) (*kgo.Client, error) {
	opts, err := c.ClientOptions(clientID, log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}
