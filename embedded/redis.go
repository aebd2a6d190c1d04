package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Redis is an in-process Redis-protocol server (miniredis) on 127.0.0.1 for the zero-install default. It keeps
// its data in memory only: the notifier rebuilds its customer replica from the compacted customers topic after a
// restart, but deliveries parked for later (quiet hours, rate limits, provider outages) do not survive one. Use
// a real Redis (--redis) where that matters.
type Redis struct {
	m *miniredis.Miniredis
	emulation
}

// StartRedis starts the server and makes its key expiry follow the wall clock (miniredis only expires keys
// when told to) until ctx is done. Each step sorts and visits every key under the server's lock, which stalls every
// client meanwhile: with the decision API's keys (one per payment asked for) a step takes tens of milliseconds per
// hundred thousand keys. So steps come a second apart, or a hundred times their own duration when that is longer
// (at most 30 s): expiry stays about a step late, and the pauses take about 1% of the time.
func StartRedis(ctx context.Context) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	go func() {
		last := time.Now()
		t := time.NewTimer(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
				t.Reset(min(max(time.Second, 100*time.Since(now)), 30*time.Second))
			}
		}
	}()
	return &Redis{m: m}, nil
}

// Addr is the host:port clients connect to.
func (r *Redis) Addr() string { return r.m.Addr() }

// Close stops the server.
func (r *Redis) Close() { r.m.Close() }
