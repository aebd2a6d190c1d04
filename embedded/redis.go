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
// when told to), a second at a time, until ctx is done: each step visits every key, and the notifier's keys live
// for minutes to days, so a finer step costs CPU and buys nothing.
func StartRedis(ctx context.Context) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	go func() {
		last := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return &Redis{m: m}, nil
}

// Addr is the host:port clients connect to.
func (r *Redis) Addr() string { return r.m.Addr() }

// Close stops the server.
func (r *Redis) Close() { r.m.Close() }
