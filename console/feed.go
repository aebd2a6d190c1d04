package console

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/topics"
)

// recentPerPartition is how far back the live view starts: the newest alerts of each partition of the alerts topic.
const recentPerPartition = 20

// Follow reads the alerts topic into hub until ctx is done, starting with the newest alerts of each partition.
// It reads without a consumer group: every console shows every alert. Unreadable records are skipped (the
// notifier dead-letters them).
func Follow(ctx context.Context, opts []kgo.Opt, hub *Hub, log *slog.Logger) error {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(string(topics.Alerts)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-recentPerPartition)),
	)...)
	if err != nil {
		return fmt.Errorf("console alerts client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		failed := false
		fs.EachError(func(t string, p int32, err error) {
			failed = true
			log.Warn("console: reading alerts", "topic", t, "partition", p, "err", err)
		})
		if failed { // a lasting error (no access, no topic) would otherwise be retried and logged in a loop
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, err := topics.AlertCodec{}.Decode(r.Value)
			if err != nil {
				return
			}
			if a, ok := v.(*topics.Alert); ok {
				hub.Publish(*a)
			}
		})
	}
}
