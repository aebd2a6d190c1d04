package main

import (
	"context"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
)

func TestWrongRedisPasswordFailsStartUp(t *testing.T) {
	r := testenv.StartRedisWith(t, testenv.RedisOptions{Password: "right"})
	ctx := context.Background()
	good, _, err := redisClient(ctx, r.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := checkRedis(ctx, good); err != nil {
		t.Fatalf("right password: %v", err)
	}
	bad, _, _ := redisClient(ctx, strings.Replace(r.URL(), ":right@", ":wrong@", 1), "")
	defer bad.Close()
	if err := checkRedis(ctx, bad); err == nil || !strings.Contains(err.Error(), "redis refused the notifier") {
		t.Fatalf("wrong password: %v", err)
	}
	// Unreachable is not fatal: the notifier waits for Redis.
	down, _, _ := redisClient(ctx, "redis://127.0.0.1:1/0", "")
	defer down.Close()
	if err := checkRedis(ctx, down); err != nil {
		t.Fatalf("unreachable Redis must not fail start-up: %v", err)
	}
}
