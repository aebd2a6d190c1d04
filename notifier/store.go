package notifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Store is the notifier's own datastore in Redis: the replica of customers, the state of every delivery, the
// deliveries waiting for later, and the record of outcomes.
//
// Keys:
//
//	notif:{alert}:{channel}:{recipient}   delivery claim: "<token>" while an instance works on it (with a lease),
//	                                      then "sent" or "failed"
//	notif:{alert}:{channel}:{recipient}:a an attempt may have reached the provider (see possible duplicates)
//	notif:deferred                        sorted set of parked deliveries, scored by when they are due
//	alert:{id}                            the alert, for parked deliveries
//	alert:{id}:deliveries                 hash of outcomes, field channel:masked recipient
//	customer:{account}                    customer JSON
//	customers:offset                      hash partition → last replicated offset of the customers topic
type Store struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	log     *slog.Logger
	up      func(bool) // reports Redis reachability to a metric
}

// Retention of delivery state: long enough that a redelivered or re-emitted alert is recognised.
const (
	settledTTL  = 30 * 24 * time.Hour
	alertTTL    = 7 * 24 * time.Hour
	deferredKey = "notif:deferred"
)

// NewStore wraps a Redis client.
func NewStore(rdb redis.UniversalClient, log *slog.Logger, up func(bool)) *Store {
	if up == nil {
		up = func(bool) {}
	}
	return &Store{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), log: log, up: up}
}

// do runs fn until Redis answers. While Redis is unreachable the caller waits, so the notifier pauses
// consumption instead of losing or skipping alerts; it resumes when Redis is back.
func (s *Store) do(ctx context.Context, what string, fn func(context.Context) error) error {
	var b *backoff.ExponentialBackOff // made on the first failure: the common call succeeds at once
	for warned := false; ; {
		err := fn(ctx)
		if err == nil || errors.Is(err, redis.Nil) || !isUnavailable(err) {
			if warned {
				s.log.Info("redis is back; resuming")
			}
			s.up(true)
			return err
		}
		s.up(false)
		if !warned {
			s.log.Warn("redis unavailable; pausing until it is back", "op", what, "err", err)
			warned = true
		}
		if b == nil {
			b = backoff.NewExponentialBackOff()
			b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 5*time.Second
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(b.NextBackOff()):
		}
	}
}

// isUnavailable tells connection trouble (wait and retry) from a Redis error reply (a bug: report it).
func isUnavailable(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// Replies while Redis loads its data or fails over are temporary too.
		msg := rerr.Error()
		return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "READONLY") || strings.HasPrefix(msg, "CLUSTERDOWN")
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Claim outcomes.
const (
	claimed = "claimed"
	sent    = "sent"
	failed  = "failed"
	busy    = "busy"
)

var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  if v == 'sent' or v == 'failed' then return {v, 0, 0} end
  return {'busy', redis.call('PTTL', KEYS[1]), 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'claimed', 0, redis.call('EXISTS', KEYS[2])}`)

// claim takes a delivery for this attempt. It returns claimed (with whether an earlier attempt may already have
// reached the provider), sent or failed (settled before), or busy (another instance holds it, for wait).
func (s *Store) claim(ctx context.Context, key, token string, lease time.Duration) (status string, wait time.Duration, attempted bool, err error) {
	var res []any
	err = s.do(ctx, "claim", func(ctx context.Context) error {
		var e error
		res, e = claimScript.Run(ctx, s.rdb, []string{key, key + ":a"}, token, lease.Milliseconds()).Slice()
		return e
	})
	if err != nil {
		return "", 0, false, fmt.Errorf("claim %s: %w", key, err)
	}
	return res[0].(string), time.Duration(res[1].(int64)) * time.Millisecond, res[2].(int64) == 1, nil
}

// markAttempt records that a send is about to start: if this instance dies before it records the outcome, the
// next one knows the provider may already have the message.
func (s *Store) markAttempt(ctx context.Context, key string) error {
	return s.do(ctx, "mark attempt", func(ctx context.Context) error {
		return s.rdb.Set(ctx, key+":a", "1", settledTTL).Err()
	})
}

var settleScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
return 1`)

// settle ends this instance's claim: to sent or failed, or released (outcome "") for a later attempt. Only the
// holder of the claim can settle it. clearAttempt says the provider certainly did not take the message.
func (s *Store) settle(ctx context.Context, key, token, outcome string, clearAttempt bool) error {
	clear := "0"
	if clearAttempt || outcome == sent || outcome == failed {
		clear = "1"
	}
	return s.do(ctx, "settle", func(ctx context.Context) error {
		return settleScript.Run(ctx, s.rdb, []string{key, key + ":a"}, token, outcome, settledTTL.Milliseconds(), clear).Err()
	})
}

// job is a delivery parked for later.
type job struct {
	AlertID   string    `json:"alert_id"`
	AccountID string    `json:"account_id"`
	Channel   string    `json:"channel"`
	Recipient string    `json:"recipient"`
	Attempt   int       `json:"attempt"`  // sends so far
	First     time.Time `json:"first"`    // when the delivery was planned, for the retry budget
	Admitted  bool      `json:"admitted"` // passed the rate limit: retries are not counted again
	Parks     int       `json:"parks"`    // makes every parked entry distinct from the one it replaces
}

func (j job) key() string {
	return "notif:" + j.AlertID + ":" + j.Channel + ":" + recipientID(j.Recipient)
}

// park stores a delivery to be attempted at due.
func (s *Store) park(ctx context.Context, j job, due time.Time) error {
	b, _ := json.Marshal(j)
	return s.do(ctx, "park", func(ctx context.Context) error {
		return s.rdb.ZAdd(ctx, deferredKey, redis.Z{Score: float64(due.UnixMilli()), Member: b}).Err()
	})
}

var dueScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due`)

// due takes up to n parked deliveries that are due at now. Taking one pushes its due time out by lease, so
// an instance that dies while working on it leaves it to be taken again, not lost.
func (s *Store) due(ctx context.Context, now time.Time, lease time.Duration, n int) ([]job, []string, error) {
	var members []any
	err := s.do(ctx, "due", func(ctx context.Context) error {
		var e error
		members, e = dueScript.Run(ctx, s.rdb, []string{deferredKey}, now.UnixMilli(), now.Add(lease).UnixMilli(), n).Slice()
		return e
	})
	if err != nil {
		return nil, nil, err
	}
	var jobs []job
	var raw []string
	for _, m := range members {
		var j job
		if json.Unmarshal([]byte(m.(string)), &j) == nil {
			jobs = append(jobs, j)
			raw = append(raw, m.(string))
		}
	}
	return jobs, raw, nil
}

// done removes a parked delivery that was taken with due.
func (s *Store) done(ctx context.Context, member string) error {
	return s.do(ctx, "done", func(ctx context.Context) error { return s.rdb.ZRem(ctx, deferredKey, member).Err() })
}

// Parked returns how many deliveries wait.
func (s *Store) Parked(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, deferredKey).Result()
}

func (s *Store) saveAlert(ctx context.Context, a *topics.Alert) error {
	b, _ := json.Marshal(a)
	return s.do(ctx, "save alert", func(ctx context.Context) error { return s.rdb.Set(ctx, "alert:"+a.ID, b, alertTTL).Err() })
}

func (s *Store) loadAlert(ctx context.Context, id string) (*topics.Alert, error) {
	var b []byte
	err := s.do(ctx, "load alert", func(ctx context.Context) error {
		var e error
		b, e = s.rdb.Get(ctx, "alert:"+id).Bytes()
		return e
	})
	if err != nil {
		return nil, err
	}
	var a topics.Alert
	return &a, json.Unmarshal(b, &a)
}

// Outcome is what happened to one delivery, as recorded for "was this alert delivered, where, when".
type Outcome struct {
	Channel   string    `json:"channel"`
	Recipient string    `json:"recipient"` // masked
	Status    string    `json:"status"`    // sent, failed, deferred, retrying, duplicate
	Detail    string    `json:"detail,omitempty"`
	Attempts  int       `json:"attempts"`
	At        time.Time `json:"at"`
}

func (s *Store) record(ctx context.Context, alertID string, o Outcome) error {
	b, _ := json.Marshal(o)
	key := "alert:" + alertID + ":deliveries"
	return s.do(ctx, "record outcome", func(ctx context.Context) error {
		pipe := s.rdb.TxPipeline()
		pipe.HSet(ctx, key, o.Channel+":"+o.Recipient, b)
		pipe.Expire(ctx, key, settledTTL)
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Deliveries returns the recorded outcomes of an alert's deliveries.
func (s *Store) Deliveries(ctx context.Context, alertID string) ([]Outcome, error) {
	m, err := s.rdb.HGetAll(ctx, "alert:"+alertID+":deliveries").Result()
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", alertID, err)
	}
	var out []Outcome
	for _, v := range m {
		var o Outcome
		if json.Unmarshal([]byte(v), &o) == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

// allow applies the per account and channel rate limit. When it says no, retryAfter is when to try again.
func (s *Store) allow(ctx context.Context, account, channel string, rl RateLimit) (ok bool, retryAfter time.Duration, err error) {
	var res *redis_rate.Result
	err = s.do(ctx, "rate limit", func(ctx context.Context) error {
		var e error
		res, e = s.limiter.Allow(ctx, "rl:"+account+":"+channel, redis_rate.Limit{Rate: rl.Limit, Burst: rl.Limit, Period: rl.Per})
		return e
	})
	if err != nil {
		return false, 0, err
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

var replicateScript = redis.NewScript(`
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if tonumber(ARGV[2]) <= last then return 0 end
if ARGV[3] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`)

// replicate applies one record of the customers topic (nil value: delete) together with its offset, atomically:
// a replay after a crash or on an empty Redis applies each record at most once and in order.
func (s *Store) replicate(ctx context.Context, account string, partition int32, offset int64, value []byte) error {
	return s.do(ctx, "replicate customer", func(ctx context.Context) error {
		return replicateScript.Run(ctx, s.rdb, []string{"customer:" + account, "customers:offset"},
			partition, offset, value).Err()
	})
}

// replicatedOffsets returns the next offset to read per partition of the customers topic.
func (s *Store) replicatedOffsets(ctx context.Context) (map[int32]int64, error) {
	var m map[string]string
	err := s.do(ctx, "customer offsets", func(ctx context.Context) error {
		var e error
		m, e = s.rdb.HGetAll(ctx, "customers:offset").Result()
		return e
	})
	out := map[int32]int64{}
	for k, v := range m {
		p, _ := strconv.Atoi(k)
		o, _ := strconv.ParseInt(v, 10, 64)
		out[int32(p)] = o + 1
	}
	return out, err
}

// customer returns the replicated customer, or nil if there is none.
func (s *Store) customer(ctx context.Context, account string) (*topics.Customer, error) {
	var b []byte
	err := s.do(ctx, "get customer", func(ctx context.Context) error {
		var e error
		b, e = s.rdb.Get(ctx, "customer:"+account).Bytes()
		return e
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return topics.ParseCustomer(b)
}

// newToken identifies one attempt's claim.
func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
