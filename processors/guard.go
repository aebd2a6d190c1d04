package processors

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Policy says what a processor does with a record that failed on every one of its attempts.
type Policy string

const (
	// PolicySkip dead-letters the record (reason retries_exhausted) and goes on with the next.
	PolicySkip Policy = "skip"
	// PolicyStop stops the processor, which stays stopped (its health says why) until the process restarts.
	PolicyStop Policy = "stop"
)

// DefaultMaxAttempts is how often a record is tried before its processor's policy applies: enough to ride out a
// broker's restart or a store's hiccup (the supervisor waits 1, 2, 4, 8 s between attempts), few enough that a
// partition is not held up for long.
const DefaultMaxAttempts = 5

// ParsePolicy reads a policy from a flag.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicySkip, PolicyStop:
		return p, nil
	}
	return "", fmt.Errorf("record failure policy %q: want skip or stop", s)
}

// ErrStopped is the error a processor stops with when a record failed on every attempt under PolicyStop.
var ErrStopped = errors.New("stopped by the record failure policy")

// Guard keeps poison records from stopping or looping a processor. Every input callback of a group goes through
// Wrap; the same Guard serves every processor the Supervisor builds for the group, so that it remembers, across
// restarts, how often a record has failed.
//
// A record that cannot be processed at all (a null value, a header bomb, one a callback rejects with PanicReject, one
// that panics the code reading it) is dead-lettered at once and its offset committed. A record whose callback
// fails (Fail, goka's ctx.Fail) is retried by the processor's restart, up to MaxAttempts times; then Policy
// applies. Failures while the partition stops (a rebalance, a shutdown) are not the record's and are not counted.
//
// Failures are tied to the record that was being processed when they happened: a write that fails later,
// asynchronously (the broker refuses it), fails the processor without naming a record and is retried by the
// Supervisor's restarts, which health reports. Dead letters themselves are cut to fit (BuildDeadLetter).
type Guard struct {
	Name        string      // the processor, in metrics, logs and health
	DeadLetters goka.Stream // the group's dead-letter output (declared with goka.Output and topics.Raw)
	MaxAttempts int         // 0: DefaultMaxAttempts
	Policy      Policy      // "": PolicySkip
	Metrics     *Metrics    // nil: not exported
	Log         *slog.Logger

	mu       sync.Mutex
	failures map[recordID]failure
	pending  atomic.Int64 // len(failures): the common case, no failure, takes no lock
	stopped  atomic.Pointer[string]
	emit     func(goka.Context, goka.Stream, DeadLetter) // tests see what is written; nil: emitDeadLetter
}

type recordID struct {
	topic     string
	partition int32
	offset    int64
}

type failure struct {
	attempts int
	err      error
}

// maxRemembered bounds the failures a Guard remembers: records that failed and then moved to another instance
// in a rebalance are never seen again here.
const maxRemembered = 10000

// rejection is what PanicReject panics with.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + ": " + r.err.Error() }

// PanicReject aborts a callback wrapped by a Guard: the record cannot be processed, however often it is tried, and is
// dead-lettered with reason (a short code, see topics.Reason*) and err.
func PanicReject(reason string, err error) { panic(&rejection{reason: reason, err: err}) }

// Stopped returns why the Guard stopped its processor under PolicyStop, or "".
func (g *Guard) Stopped() string {
	if s := g.stopped.Load(); s != nil {
		return *s
	}
	return ""
}

// Wrap returns cb guarded. The group must be built with goka.WithNilHandling(goka.NilProcess) for null values
// to reach it (goka drops them silently by default).
func (g *Guard) Wrap(cb goka.ProcessCallback) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) {
		if msg == nil {
			g.deadLetter(ctx, nil, topics.ReasonNullValue, errors.New("the record has a null value"), 0)
			return
		}
		raw, _ := msg.([]byte)
		if err := HeaderBomb(ctx.Headers()); err != nil {
			g.deadLetter(ctx, raw, topics.ReasonHeaderBomb, err, 0)
			return
		}
		id := recordID{topic: string(ctx.Topic()), partition: ctx.Partition(), offset: ctx.Offset()}
		if g.pending.Load() > 0 {
			if f, ok := g.failure(id); ok && f.attempts >= g.maxAttempts() {
				g.exhausted(ctx, raw, id, f)
				return
			}
		}
		defer g.settle(ctx, raw, id)
		cb(ctx, msg)
	}
}

// settle runs deferred around a callback: it turns rejections and panics into dead letters and counts failures.
func (g *Guard) settle(ctx goka.Context, raw []byte, id recordID) {
	r := recover()
	if r == nil {
		if g.pending.Load() > 0 {
			g.forget(id)
		}
		return
	}
	err, isErr := r.(error)
	var rej *rejection
	if isErr && errors.As(err, &rej) {
		g.forget(id)
		g.deadLetter(ctx, raw, rej.reason, rej.err, 0)
		return
	}
	if ctx.Context().Err() != nil {
		panic(r) // the partition is stopping: whatever failed, the record is not to blame
	}
	var rt runtime.Error
	if !isErr || errors.As(err, &rt) {
		// A panic that is not an error goka or PanicFail raised: the code reading the record broke on it, and would
		// again on every attempt.
		g.forget(id)
		g.log().Error("processing a record panicked", "processor", g.Name, "topic", id.topic, "partition", id.partition,
			"offset", id.offset, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		g.deadLetter(ctx, raw, topics.ReasonPanic, fmt.Errorf("panic: %v", r), 0)
		return
	}
	n := g.fail(id, err)
	if g.Metrics != nil {
		g.Metrics.Failures.WithLabelValues(g.Name).Inc()
	}
	g.log().Warn("record failed; the processor restarts and tries it again", "processor", g.Name, "topic", id.topic,
		"partition", id.partition, "offset", id.offset, "attempt", n, "max_attempts", g.maxAttempts(), "err", err)
	panic(r)
}

// exhausted applies the policy to a record that failed on every attempt.
func (g *Guard) exhausted(ctx goka.Context, raw []byte, id recordID, f failure) {
	if g.Policy == PolicyStop {
		why := fmt.Sprintf("record %s/%d offset %d failed %d times, last: %v", id.topic, id.partition, id.offset, f.attempts, f.err)
		g.stopped.Store(&why)
		if g.Metrics != nil {
			g.Metrics.Stopped.WithLabelValues(g.Name).Set(1)
		}
		g.log().Error("record failed on every attempt; stopping the processor (policy stop)", "processor", g.Name,
			"topic", id.topic, "partition", id.partition, "offset", id.offset, "attempts", f.attempts, "err", f.err)
		PanicFail(ctx, fmt.Errorf("%w: %s", ErrStopped, why))
	}
	g.forget(id)
	g.log().Error("record failed on every attempt; dead-lettering it and going on (policy skip)", "processor", g.Name,
		"topic", id.topic, "partition", id.partition, "offset", id.offset, "attempts", f.attempts, "err", f.err)
	g.deadLetter(ctx, raw, topics.ReasonRetriesExhausted, f.err, f.attempts)
}

func (g *Guard) deadLetter(ctx goka.Context, raw []byte, reason string, err error, attempts int) {
	dl := BuildDeadLetter(Source{Topic: string(ctx.Topic()), Partition: ctx.Partition(), Offset: ctx.Offset(), Key: ctx.Key()}, raw, reason, err)
	if attempts > 0 {
		dl.Headers[topics.HeaderAttempts] = []byte(strconv.Itoa(attempts))
	}
	if g.emit != nil {
		g.emit(ctx, g.DeadLetters, dl)
	} else {
		emitDeadLetter(ctx, g.DeadLetters, dl)
	}
	if g.Metrics != nil {
		g.Metrics.DeadLetters.WithLabelValues(g.Name, reason).Inc()
	}
	g.log().Warn("record dead-lettered", "processor", g.Name, "reason", reason, "err", err, "topic", ctx.Topic(),
		"partition", ctx.Partition(), "offset", ctx.Offset(), "dead_letters", string(g.DeadLetters))
}

func (g *Guard) log() *slog.Logger {
	if g.Log == nil {
		return slog.Default()
	}
	return g.Log
}

func (g *Guard) maxAttempts() int {
	if g.MaxAttempts < 1 {
		return DefaultMaxAttempts
	}
	return g.MaxAttempts
}

func (g *Guard) failure(id recordID) (failure, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.failures[id]
	return f, ok
}

// fail counts a failed attempt of a record and returns how many it has had.
func (g *Guard) fail(id recordID, err error) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failures == nil || len(g.failures) >= maxRemembered {
		g.failures = map[recordID]failure{}
	}
	f := g.failures[id]
	f.attempts++
	f.err = err
	g.failures[id] = f
	g.pending.Store(int64(len(g.failures)))
	return f.attempts
}

func (g *Guard) forget(id recordID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.failures, id)
	g.pending.Store(int64(len(g.failures)))
}

// Metrics are what supervisors and guards export, one set per registry for every processor of a process.
type Metrics struct {
	Restarts    *prometheus.CounterVec // by processor
	Failures    *prometheus.CounterVec // by processor: failed attempts of a record
	DeadLetters *prometheus.CounterVec // by processor and reason
	Stopped     *prometheus.GaugeVec   // by processor: 1 once the policy stopped it
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Restarts:    metrics.CounterVec("fraudpipe_processor_restarts_total", "Times a processor stopped on an error and was rebuilt.", "processor"),
		Failures:    metrics.CounterVec("fraudpipe_record_failures_total", "Failed attempts to process a record; each is retried by a restart, up to the attempt limit.", "processor"),
		DeadLetters: metrics.CounterVec("fraudpipe_dead_letters_total", "Input records a processor could not process and dead-lettered, by reason (malformed payments: fraudpipe_payments_rejected_total).", "processor", "reason"),
		Stopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraudpipe_processor_stopped", Help: "1 when the record failure policy stop has stopped the processor.",
		}, []string{"processor"}),
	}
	if reg != nil {
		reg.MustRegister(m.Restarts, m.Failures, m.DeadLetters, m.Stopped)
	}
	return m
}
