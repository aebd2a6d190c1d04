package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// An emulated script answers EVALSHA with its Go reply; every other script, and malformed calls, still reach
// miniredis and get Redis's answers.
func TestEmulatedScriptsAndTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()

	emulated := redis.NewScript(`return redis.call('GET', KEYS[1])`)
	r.Emulate(emulated.Hash(), func(k Keys, keys, args []string) (any, error) {
		v, _ := k.Get(keys[0])
		k.Set(keys[0], v+args[0], time.Minute)
		return []any{"go", v, k.PTTL(keys[0]), k.PTTL("missing")}, nil
	})
	rdb.Set(ctx, "k", "a", 0)
	got, err := emulated.Run(ctx, rdb, []string{"k"}, "b").Slice()
	if err != nil || len(got) != 4 || got[0] != "go" || got[1] != "a" || got[2].(int64) <= 0 || got[3] != int64(-2) {
		t.Fatalf("emulated script: %v %v", got, err)
	}
	if v := rdb.Get(ctx, "k").Val(); v != "ab" {
		t.Fatalf("the emulated script's write: %q", v)
	}
	// Not emulated: interpreted by miniredis as before.
	lua := redis.NewScript(`return redis.call('GET', KEYS[1]) .. ARGV[1]`)
	if v, err := lua.Run(ctx, rdb, []string{"k"}, "!").Text(); err != nil || v != "ab!" {
		t.Fatalf("a script that is not emulated: %q %v", v, err)
	}
	// Malformed key counts are miniredis's to refuse.
	if err := rdb.Do(ctx, "EVALSHA", emulated.Hash(), "x", "k").Err(); err == nil {
		t.Fatal("EVALSHA with a key count that is not a number was accepted")
	}
	if err := rdb.Do(ctx, "EVALSHA", emulated.Hash(), "3", "k").Err(); err == nil {
		t.Fatal("EVALSHA with more keys than arguments was accepted")
	}
}
