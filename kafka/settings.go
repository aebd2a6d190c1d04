package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/topics"
)

const settingPartitioner = "partitioner"

// AgreePartitioner returns the partitioner the pipeline places accounts with, recording want (or
// DefaultPartitioner when want is "") if this is the first part of a new pipeline. A pipeline whose state topic
// (stateTopic) existed before the setting did uses FNV-1a, the only placement it knew. It refuses a want that
// differs from the recorded one: two placements would split accounts' state between partitions.
func (c Config) AgreePartitioner(ctx context.Context, want Partitioner, stateTopic string, log *slog.Logger) (Partitioner, error) {
	if err := c.EnsureTopics(ctx, []topics.Spec{{Name: topics.Settings, Retention: -1, Partitions: 1}}); err != nil {
		return "", err
	}
	cl, err := c.NewProducer("fraudpipe-settings", log)
	if err != nil {
		return "", fmt.Errorf("settings client: %w", err)
	}
	defer cl.Close()
	recorded, err := firstSetting(ctx, cl, settingPartitioner)
	if err != nil {
		return "", err
	}
	if recorded == "" {
		existing, err := kadm.NewClient(cl).ListTopics(ctx, stateTopic)
		if err != nil {
			return "", fmt.Errorf("list topics: %w", err)
		}
		existed := existing.Has(stateTopic)
		decide := want
		switch {
		case existed:
			decide = FNV1a
		case decide == "":
			decide = DefaultPartitioner
		}
		r := &kgo.Record{Topic: topics.Settings, Key: []byte(settingPartitioner), Value: []byte(decide)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return "", fmt.Errorf("record the partitioner: %w", err)
		}
		// Another part may have recorded its choice first: the first record decides.
		if recorded, err = firstSetting(ctx, cl, settingPartitioner); err != nil {
			return "", err
		}
		log.Info("pipeline partitioner recorded", "partitioner", recorded, "topic", topics.Settings)
	}
	p, err := ParsePartitioner(recorded)
	if err != nil || p == "" {
		return "", fmt.Errorf("topic %s records partitioner %q, which this release does not know", topics.Settings, recorded)
	}
	if want != "" && want != p {
		return "", fmt.Errorf("this pipeline places accounts with partitioner %s (recorded on topic %s), not %s: "+
			"two placements would split accounts' state between partitions. Leave --partitioner unset (or set it to %s), "+
			"or create a new pipeline (new topics, empty state) to change it", p, topics.Settings, want, p)
	}
	return p, nil
}

// firstSetting reads the settings topic up to its end and returns the first value recorded for key, "" if none.
func firstSetting(ctx context.Context, cl *kgo.Client, key string) (string, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics.Settings)
	if err != nil {
		return "", fmt.Errorf("end of topic %s: %w", topics.Settings, err)
	}
	end, ok := ends.Lookup(topics.Settings, 0)
	if !ok || end.Err != nil {
		return "", fmt.Errorf("end of topic %s: %w", topics.Settings, errors.Join(end.Err, errors.New("partition 0 not listed")))
	}
	if end.Offset == 0 {
		return "", nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topics.Settings: {0: kgo.NewOffset().AtStart()}})
	defer cl.RemoveConsumePartitions(map[string][]int32{topics.Settings: {0}})
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return "", fmt.Errorf("read topic %s: %w", topics.Settings, errs[0].Err)
		}
		var found string
		last := int64(-1)
		fs.EachRecord(func(r *kgo.Record) {
			if found == "" && string(r.Key) == key {
				found = string(r.Value)
			}
			last = r.Offset
		})
		if found != "" {
			return found, nil
		}
		if last >= end.Offset-1 {
			return "", nil
		}
	}
}
