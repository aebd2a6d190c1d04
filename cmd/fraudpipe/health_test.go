package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A bad record policy fails a part at once, before it waits for Kafka (here unreachable).
func TestBadRecordPolicyFailsStartUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"detector", "--record-failure-policy", "retry", "--state-dir", t.TempDir()},
		{"notifier", "--record-attempts", "0"},
	} {
		err := run(ctx, append(args, "--brokers", "127.0.0.1:1", "--metrics-addr", ""))
		if err == nil || !strings.Contains(err.Error(), "--record-") || ctx.Err() != nil {
			t.Errorf("%v: %v, want the flag's error at once", args, err)
		}
	}
}
