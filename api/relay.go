package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/topics"
)

// RelayGroup is the consumer group the API instances share on the decisions topic: each partition is read by one
// of them, which hands the decisions of payments posted to the API to the instance each names (the reply address the
// detector copies from the payment): through Redis, or directly when that instance is itself. Decisions without a
// reply address are skipped by their headers, unparsed. No instance needs sticky routing.
const RelayGroup = "fraudpipe-api"

// Relay reads the decisions of payments asked for through the API and records and forwards them (Store.Record).
type Relay struct {
	client  *kgo.Client
	store   *Store
	local   *Server
	metrics *Metrics
	log     *slog.Logger
	ready   chan struct{}
	once    sync.Once
}

// NewRelay joins the relay group. local is the server of this process, whose decisions the relay hands over without
// Redis's publish; nil for none. A group that never committed starts a minute before now: the decisions of requests
// taken while the first instance was joining are not skipped.
func NewRelay(cfg kafka.Config, store *Store, local *Server, log *slog.Logger) (*Relay, error) {
	r := &Relay{store: store, local: local, log: log, ready: make(chan struct{})}
	if local != nil {
		r.metrics = local.cfg.Metrics
	} else {
		r.metrics = NewMetrics(nil)
	}
	opts, err := cfg.ClientOptions("fraudpipe-api-relay", log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(RelayGroup),
		kgo.ConsumeTopics(topics.Decisions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-time.Minute).UnixMilli())),
		kgo.FetchMaxWait(100*time.Millisecond),
		// Offsets are committed for what was relayed, never for what was only fetched.
		kgo.AutoCommitMarks(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { r.once.Do(func() { close(r.ready) }) }),
	)
	if r.client, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("api relay: %w", err)
	}
	return r, nil
}

// Ready is closed once the relay owns its first partitions.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	defer r.client.Close()
	var replies []Reply
	self := ""
	if r.local != nil {
		self = r.local.cfg.Instance
	}
	for {
		fs := r.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			r.log.Warn("api relay: fetch failed", "topic", t, "partition", p, "err", err)
		})
		replies = replies[:0]
		fs.EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == topics.HeaderReplyTo && len(h.Value) > 0 {
					key, err := decisionKeyOf(rec.Value)
					if err == nil && (outcomeIn(rec.Value) == "" || !json.Valid(rec.Value)) {
						err = errors.New("not a decision")
					}
					if err != nil {
						r.log.Warn("api relay: unreadable decision skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
						return
					}
					replies = append(replies, Reply{Instance: string(h.Value), Key: key, Decision: rec.Value})
					return
				}
			}
		})
		// Redis away: keep trying (the decisions wait on Kafka, uncommitted); requests meanwhile get their fallback.
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			err := r.store.Record(ctx, replies, self)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("api relay: recording decisions failed, retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		local := 0
		for _, rp := range replies {
			if rp.Instance == self {
				local++
			}
		}
		r.metrics.Relayed.WithLabelValues("local").Add(float64(local))
		r.metrics.Relayed.WithLabelValues("published").Add(float64(len(replies) - local))
		// This instance's own, once stored: a GET after the answer finds the decision.
		for _, rp := range replies {
			if rp.Instance == self {
				r.local.replies.deliver(rp.Key, rp.Decision)
			}
		}
		fs.EachRecord(func(rec *kgo.Record) { r.client.MarkCommitRecords(rec) })
	}
}

// replies is where this instance's waiting requests get their decisions.
type replies struct {
	mu      sync.Mutex
	waiting map[string]chan []byte
}

func newReplies() *replies { return &replies{waiting: map[string]chan []byte{}} }

// wait registers a request for key's decision; ok is false if another request of this instance already waits.
func (w *replies) wait(key string) (ch chan []byte, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, busy := w.waiting[key]; busy {
		return nil, false
	}
	ch = make(chan []byte, 1)
	w.waiting[key] = ch
	return ch, true
}

func (w *replies) done(key string) {
	w.mu.Lock()
	delete(w.waiting, key)
	w.mu.Unlock()
}

func (w *replies) deliver(key string, decision []byte) {
	w.mu.Lock()
	ch := w.waiting[key]
	delete(w.waiting, key)
	w.mu.Unlock()
	if ch != nil {
		ch <- decision
	}
}

// listen delivers what the relays publish to this instance until ctx ends. go-redis resubscribes after a lost
// connection; a decision published meanwhile is still found in the store when the request's deadline comes.
func (w *replies) listen(ctx context.Context, rdb redis.UniversalClient, instance string, log *slog.Logger, subscribed chan<- struct{}) error {
	ps := rdb.Subscribe(ctx, ReplyChannel(instance))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		return fmt.Errorf("api: subscribe to replies: %w", err)
	}
	close(subscribed)
	ch := ps.Channel(redis.WithChannelSize(4096))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return errors.New("api: reply subscription closed")
			}
			key, decision, ok := strings.Cut(m.Payload, "\n")
			if !ok {
				log.Warn("api: unreadable reply")
				continue
			}
			w.deliver(key, []byte(decision))
		}
	}
}
