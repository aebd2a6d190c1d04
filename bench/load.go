package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/topics"
)

// sendTimes maps a phase's payment ids to when they were handed to the producer.
type sendTimes struct {
	prefix   string
	at       []int64 // unix ns, by sequence number
	accounts int     // distinct accounts that paid
}

// load is one phase's stream of generated payments and when each was sent.
type load struct {
	g  *producer.Generator
	st *sendTimes
}

// newLoad prepares n payments whose ids start with prefix, and has the watcher time their alerts.
func newLoad(cfg Config, prefix string, n int, w *alertWatcher) *load {
	g := producer.NewGenerator(uint64(len(prefix)*7919+n), cfg.Accounts, 0.01, time.Now().Add(-time.Duration(n)*producer.Step(cfg.Accounts, time.Hour)), time.Hour)
	g.IDPrefix = prefix
	// A fraud pattern's later payments get their ids when the pattern starts and are sent later, so ids run
	// ahead of the send count by at most the payments still scheduled.
	st := &sendTimes{prefix: prefix, at: make([]int64, n+n/10+100)}
	w.expect(st)
	return &load{g: g, st: st}
}

// send sends the load's next n payments, at rate per second (0: as fast as possible).
func (l *load) send(ctx context.Context, cfg Config, n, rate int) error {
	s, err := producer.NewSender(cfg.Kafka, "fraudpipe-bench", slog.Default())
	if err != nil {
		return err
	}
	prefix, st := l.st.prefix, l.st
	began := time.Now()
	for i := range n {
		if rate > 0 {
			if ahead := time.Until(began.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		p := l.g.Next()
		if seq, err := strconv.Atoi(p.ID[len(prefix)+len("pay_"):]); err == nil && seq < len(st.at) {
			st.at[seq] = time.Now().UnixNano()
		}
		if err := s.Send(ctx, string(topics.Payments), p.AccountID, producer.Encode(p)); err != nil {
			s.Close()
			return err
		}
	}
	st.accounts = l.g.Distinct()
	return s.Close()
}

// produce sends n generated payments, at rate per second (0: as fast as possible).
func produce(ctx context.Context, cfg Config, prefix string, n, rate int, w *alertWatcher) (*sendTimes, error) {
	l := newLoad(cfg, prefix, n, w)
	if err := l.send(ctx, cfg, n, rate); err != nil {
		return nil, err
	}
	return l.st, nil
}

// median of a non-empty slice, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// clientAtEnds returns a client on k's settings and the end offsets of topic's partitions.
func clientAtEnds(ctx context.Context, k kafka.Config, clientID, topic string) (*kgo.Client, map[int32]int64, error) {
	opts, err := k.ClientOptions(clientID, slog.Default())
	if err != nil {
		return nil, nil, err
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, err
	}
	listed, err := kadm.NewClient(client).ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	for p, o := range listed[topic] {
		ends[p] = o.Offset
	}
	return client, ends, nil
}

// alertWatcher consumes the alerts topic and records, per alert, the time from its payment's send to arrival.
type alertWatcher struct {
	client *kgo.Client
	done   chan struct{}
	mu     sync.Mutex
	phases map[string]*sendTimes
	lat    map[*sendTimes][]float64
}

// newAlertWatcher watches the alerts written from now on.
func newAlertWatcher(ctx context.Context, k kafka.Config) (*alertWatcher, error) {
	client, ends, err := clientAtEnds(ctx, k, "fraudpipe-bench-alerts", string(topics.Alerts))
	if err != nil {
		return nil, err
	}
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		from[p] = kgo.NewOffset().At(end)
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{string(topics.Alerts): from})
	w := &alertWatcher{client: client, done: make(chan struct{}), phases: map[string]*sendTimes{}, lat: map[*sendTimes][]float64{}}
	go func() {
		defer close(w.done)
		for {
			fetches := client.PollFetches(context.Background())
			if fetches.IsClientClosed() {
				return
			}
			fetches.EachRecord(func(r *kgo.Record) { w.observe(r.Value, time.Now().UnixNano()) })
		}
	}()
	return w, nil
}

func (w *alertWatcher) expect(st *sendTimes) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phases[st.prefix] = st
}

func (w *alertWatcher) observe(value []byte, now int64) {
	var a struct {
		PaymentID string `json:"payment_id"`
	}
	if json.Unmarshal(value, &a) != nil {
		return
	}
	prefix, seqStr, ok := strings.Cut(a.PaymentID, "pay_")
	seq, err := strconv.Atoi(seqStr)
	if !ok || err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.phases[prefix]
	if st == nil || seq >= len(st.at) || st.at[seq] == 0 {
		return
	}
	w.lat[st] = append(w.lat[st], float64(now-st.at[seq])/1e6)
}

func (w *alertWatcher) latencies(st *sendTimes) Latency {
	w.mu.Lock()
	l := slices.Clone(w.lat[st])
	w.mu.Unlock()
	if len(l) == 0 {
		return Latency{}
	}
	slices.Sort(l)
	q := func(p float64) float64 { return l[min(len(l)-1, int(p*float64(len(l))))] }
	return Latency{Alerts: len(l), P50ms: q(0.50), P95ms: q(0.95), P99ms: q(0.99), MaxMs: l[len(l)-1]}
}

func (w *alertWatcher) close() {
	w.client.Close()
	<-w.done
}
