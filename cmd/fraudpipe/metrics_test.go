package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A part binds its metrics port before anything else: a taken port fails it at once, naming the listener, rather
// than after it has reached Kafka (here unreachable) and started work.
func TestTakenMetricsPortFailsStartUpFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for part, extra := range map[string][]string{
		"notifier": nil,
		"detector": {"--state-dir", t.TempDir(), "--rules", "../../examples/rules.yaml"},
	} {
		err := run(ctx, append([]string{part, "--brokers", "127.0.0.1:1", "--metrics-addr", taken.Addr().String()}, extra...))
		if err == nil || !strings.Contains(err.Error(), "metrics listener") {
			t.Errorf("%s with a taken metrics port: %v, want the metrics listener's error", part, err)
		}
	}
}
