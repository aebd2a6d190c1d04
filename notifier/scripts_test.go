package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/embedded"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
)

// startEmbeddedRedis starts the embedded Redis as `fraudpipe run` does: the store's per-delivery scripts in Go.
func startEmbeddedRedis(t *testing.T, ctx context.Context) *embedded.Redis {
	t.Helper()
	r, err := embedded.StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	for _, s := range ScriptEquivalents() {
		r.Emulate(s.Digest, func(k embedded.Keys, keys, args []string) (any, error) { return s.Go(k, keys, args) })
	}
	return r
}

// The embedded Redis runs the claim and settle scripts as Go: every step of a delivery's life (claims that win,
// find it busy or settled, releases, attempt markers, settles by a stale holder, lease expiry) must leave the
// same replies and the same keys as the Lua on redis-server.
func TestScriptsAgreeWithTheirLua(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	real := redis.NewClient(&redis.Options{Addr: testenv.StartRedis(t).Addr})
	emb := redis.NewClient(&redis.Options{Addr: startEmbeddedRedis(t, ctx).Addr()})
	defer real.Close()
	defer emb.Close()

	const key, lease = "notif:a1:sms:r1", 150 * time.Millisecond
	type step struct {
		name string
		do   func(s *Store) (string, error)
	}
	claim := func(token string) func(s *Store) (string, error) {
		return func(s *Store) (string, error) {
			status, wait, attempted, err := s.claim(ctx, key, token, lease)
			// The wait is what is left of another holder's lease: the two servers' clocks differ by the
			// time between the calls, so only whether there is one is compared.
			return fmt.Sprintf("%s wait>0=%v attempted=%v", status, wait > 0, attempted), err
		}
	}
	settle := func(token, outcome string, clear bool) func(s *Store) (string, error) {
		return func(s *Store) (string, error) { return "", s.settle(ctx, key, token, outcome, clear) }
	}
	state := func(s *Store) (string, error) {
		v, err := s.rdb.Get(ctx, key).Result()
		if err == redis.Nil {
			v, err = "(none)", nil
		}
		ttl := s.rdb.PTTL(ctx, key).Val()
		marker := s.rdb.Exists(ctx, key+":a").Val()
		return fmt.Sprintf("value=%s expires=%v marker=%d", v, ttl > 0, marker), err
	}
	steps := []step{
		{"first claim", claim("t1")}, {"", state},
		{"claim while held", claim("t2")}, {"", state},
		{"attempt marked", func(s *Store) (string, error) { return "", s.markAttempt(ctx, key) }}, {"", state},
		{"released, provider unsure", settle("t1", "", false)}, {"", state},
		{"claim after an unsure release", claim("t3")}, {"", state},
		{"settle by a stale holder", settle("t1", sent, false)}, {"", state},
		{"released, provider certainly untouched", settle("t3", "", true)}, {"", state},
		{"claim", claim("t4")},
		{"lease runs out", func(s *Store) (string, error) {
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if s.rdb.Exists(ctx, key).Val() == 0 {
					return "expired", nil
				}
				time.Sleep(20 * time.Millisecond)
			}
			return "still held", nil
		}},
		{"claim after expiry", claim("t5")},
		{"settled sent", settle("t5", sent, false)}, {"", state},
		{"claim of a sent delivery", claim("t6")},
		{"settle of a sent delivery", settle("t6", failed, false)}, {"", state},
	}
	sr, se := NewStore(real, slog.Default(), nil), NewStore(emb, slog.Default(), nil)
	for i, st := range steps {
		want, werr := st.do(sr)
		got, gerr := st.do(se)
		if want != got || (werr == nil) != (gerr == nil) {
			t.Fatalf("step %d %s: redis-server %q (%v), embedded %q (%v)", i, st.name, want, werr, got, gerr)
		}
	}
	// What the steps must have seen, so the comparison cannot pass on two servers that both do nothing.
	if got, _ := claim("t7")(se); got != "sent wait>0=false attempted=false" {
		t.Fatalf("a settled delivery claimed again on the embedded Redis: %s", got)
	}
}
