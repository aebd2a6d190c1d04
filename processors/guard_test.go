package processors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraudpipe/fraudpipe/topics"
)

func TestOversizedRecordIsTruncatedWithItsSizeAndDigest(t *testing.T) {
	value := bytes.Repeat([]byte("x"), 1<<20) // the largest record a default Java producer writes
	value[len(value)-1] = 'y'
	key := strings.Repeat("k", 5000)
	dl := BuildDeadLetter(Source{Topic: "payments", Partition: 3, Offset: 42, Key: key}, value, "too_large", errors.New("1048576 bytes, limit 16384"))
	if len(dl.Value) != MaxDeadLetterValue || !bytes.Equal(dl.Value, value[:MaxDeadLetterValue]) {
		t.Fatalf("value of %d bytes, want the first %d of the original", len(dl.Value), MaxDeadLetterValue)
	}
	sum := sha256.Sum256(value)
	want := map[string]string{
		topics.HeaderReason: "too_large", topics.HeaderError: "1048576 bytes, limit 16384",
		topics.HeaderSourceTopic: "payments", topics.HeaderSourcePartition: "3", topics.HeaderSourceOffset: "42",
		topics.HeaderOriginalSize: strconv.Itoa(1 << 20), topics.HeaderOriginalSHA256: hex.EncodeToString(sum[:]),
		topics.HeaderOriginalKeySize: "5000",
	}
	for k, v := range want {
		if got := string(dl.Headers[k]); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if dl.Key != key[:maxDeadLetterKey] {
		t.Errorf("key of %d bytes, want the first %d", len(dl.Key), maxDeadLetterKey)
	}
	// Everything the dead letter carries stays far below the broker's 1 MiB batch limit.
	size := len(dl.Key) + len(dl.Value)
	for k, v := range dl.Headers {
		size += len(k) + len(v)
	}
	if size > 128<<10 {
		t.Errorf("dead letter of %d bytes", size)
	}
}

func TestSmallRecordIsDeadLetteredWhole(t *testing.T) {
	dl := BuildDeadLetter(Source{Topic: "payments", Key: "acct_1"}, []byte("not json"), "not_json", errors.New("bad"))
	if string(dl.Value) != "not json" || dl.Key != "acct_1" {
		t.Fatalf("dead letter %q %q", dl.Key, dl.Value)
	}
	for _, h := range []string{topics.HeaderOriginalSize, topics.HeaderOriginalSHA256, topics.HeaderOriginalKeySize} {
		if _, ok := dl.Headers[h]; ok {
			t.Errorf("header %s on a record that was not cut", h)
		}
	}
}

func TestLongErrorIsCutWithoutSplittingACharacter(t *testing.T) {
	msg := strings.Repeat("é", maxDeadLetterError) // two bytes each
	dl := BuildDeadLetter(Source{}, nil, "x", errors.New("a"+msg))
	got := string(dl.Headers[topics.HeaderError])
	if len(got) > maxDeadLetterError || !strings.HasPrefix("a"+msg, got) || strings.ContainsRune(got, '\uFFFD') || len(got) < maxDeadLetterError-3 {
		t.Fatalf("error header of %d bytes: %q…", len(got), got[:20])
	}
}

func TestHeaderBomb(t *testing.T) {
	many := goka.Headers{}
	for i := range MaxHeaders + 1 {
		many[fmt.Sprint("h", i)] = nil
	}
	for name, tc := range map[string]struct {
		h    goka.Headers
		bomb bool
	}{
		"none":                  {nil, false},
		"our loop headers":      {goka.Headers{topics.HeaderStage: []byte("1"), topics.HeaderRulesetVersion: []byte("7")}, false},
		"too many":              {many, true},
		"one huge":              {goka.Headers{"x": make([]byte, MaxHeaderBytes)}, true},
		"at the limit of bytes": {goka.Headers{"x": make([]byte, MaxHeaderBytes-1)}, false},
	} {
		if err := HeaderBomb(tc.h); (err != nil) != tc.bomb {
			t.Errorf("%s: HeaderBomb = %v, want bomb %v", name, err, tc.bomb)
		}
	}
}

// fakeCtx is the part of goka.Context a Guard uses; the rest panics (nil embedded interface).
type fakeCtx struct {
	baseContext
	topic   goka.Stream
	offset  int64
	headers goka.Headers
	ctx     context.Context
}

type baseContext interface{ goka.Context }

func (c *fakeCtx) Topic() goka.Stream           { return c.topic }
func (c *fakeCtx) Partition() int32             { return 2 }
func (c *fakeCtx) Offset() int64                { return c.offset }
func (c *fakeCtx) Key() string                  { return "acct_1" }
func (c *fakeCtx) Headers() goka.Headers        { return c.headers }
func (c *fakeCtx) Context() context.Context     { return c.ctx }
func (c *fakeCtx) Fail(err error)               { panic(err) }
func (c *fakeCtx) record(offset int64) *fakeCtx { c2 := *c; c2.offset = offset; return &c2 }

type guardFixture struct {
	g       *Guard
	letters []DeadLetter
	calls   map[int64]int
}

// newGuard returns a guard allowing 3 attempts, whose dead letters the fixture collects.
func newGuard(policy Policy) *guardFixture {
	f := &guardFixture{calls: map[int64]int{}}
	f.g = &Guard{Name: "test", DeadLetters: "test.dlq", MaxAttempts: 3, Policy: policy, Metrics: NewMetrics(nil),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.g.emit = func(_ goka.Context, _ goka.Stream, dl DeadLetter) { f.letters = append(f.letters, dl) }
	return f
}

// call runs the guarded callback on one record and returns what panicked out of it (a processor failure). The
// callback fails on the offsets in failing and panics on offset 99.
func (f *guardFixture) call(ctx *fakeCtx, msg any, failing ...int64) (failed any) {
	cb := f.g.Wrap(func(ctx goka.Context, _ any) {
		f.calls[ctx.Offset()]++
		if ctx.Offset() == 99 {
			var fields []byte
			_ = fields[ctx.Offset()] // a decoder's bounds bug: a runtime error
		}
		for _, o := range failing {
			if o == ctx.Offset() {
				PanicFail(ctx, errors.New("store unavailable"))
			}
		}
	})
	defer func() { failed = recover() }()
	cb(ctx, msg)
	return nil
}

func TestRecordFailingEveryAttemptIsSkippedToTheDeadLetters(t *testing.T) {
	f := newGuard(PolicySkip)
	ctx := &fakeCtx{topic: "payments", ctx: context.Background()}
	for attempt := 1; attempt <= 3; attempt++ {
		// The processor restarts after each failure and resumes at the failed record.
		if failed := f.call(ctx.record(7), []byte("p7"), 7); failed == nil {
			t.Fatalf("attempt %d: the failure did not reach goka", attempt)
		}
		if len(f.letters) != 0 {
			t.Fatalf("attempt %d: dead-lettered before the attempts were spent", attempt)
		}
	}
	if failed := f.call(ctx.record(7), []byte("p7"), 7); failed != nil {
		t.Fatalf("fourth delivery failed again: %v", failed)
	}
	if f.calls[7] != 3 {
		t.Fatalf("callback ran %d times, want 3 (MaxAttempts)", f.calls[7])
	}
	if len(f.letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(f.letters))
	}
	h := f.letters[0].Headers
	if string(h[topics.HeaderReason]) != topics.ReasonRetriesExhausted || string(h[topics.HeaderAttempts]) != "3" ||
		!strings.Contains(string(h[topics.HeaderError]), "store unavailable") || string(f.letters[0].Value) != "p7" {
		t.Fatalf("dead letter %q headers %q", f.letters[0].Value, h)
	}
	// The next records go on, and a record failing once then succeeding is not dead-lettered.
	if failed := f.call(ctx.record(8), []byte("p8"), 8); failed == nil {
		t.Fatal("offset 8 did not fail")
	}
	if failed := f.call(ctx.record(8), []byte("p8")); failed != nil || len(f.letters) != 1 {
		t.Fatalf("offset 8 on its second attempt: %v, %d dead letters", failed, len(f.letters))
	}
	if got := testutil.ToFloat64(f.g.Metrics.Failures.WithLabelValues("test")); got != 4 {
		t.Fatalf("failures_total = %v, want 4", got)
	}
	if got := testutil.ToFloat64(f.g.Metrics.DeadLetters.WithLabelValues("test", topics.ReasonRetriesExhausted)); got != 1 {
		t.Fatalf("dead_letters_total{retries_exhausted} = %v", got)
	}
	if f.g.Stopped() != "" {
		t.Fatalf("policy skip stopped the processor: %s", f.g.Stopped())
	}
}

func TestRecordFailingEveryAttemptStopsTheProcessorUnderPolicyStop(t *testing.T) {
	f := newGuard(PolicyStop)
	ctx := &fakeCtx{topic: "alerts", ctx: context.Background()}
	for range 3 {
		f.call(ctx.record(5), []byte("a5"), 5)
	}
	failed := f.call(ctx.record(5), []byte("a5"), 5)
	err, _ := failed.(error)
	if !errors.Is(err, ErrStopped) || f.calls[5] != 3 {
		t.Fatalf("fourth delivery: %v after %d calls, want ErrStopped after 3", failed, f.calls[5])
	}
	if len(f.letters) != 0 {
		t.Fatal("policy stop dead-lettered the record")
	}
	if s := f.g.Stopped(); !strings.Contains(s, "alerts/2 offset 5 failed 3 times") || !strings.Contains(s, "store unavailable") {
		t.Fatalf("Stopped() = %q", s)
	}
	if testutil.ToFloat64(f.g.Metrics.Stopped.WithLabelValues("test")) != 1 {
		t.Fatal("fraudpipe_processor_stopped not set")
	}
}

func TestPoisonRecordsAreDeadLetteredAtOnce(t *testing.T) {
	f := newGuard(PolicyStop)
	ctx := &fakeCtx{topic: "payments", ctx: context.Background()}
	bomb := goka.Headers{"x": make([]byte, MaxHeaderBytes+1)}
	cases := []struct {
		ctx    *fakeCtx
		msg    any
		reason string
	}{
		{ctx.record(1), nil, topics.ReasonNullValue},
		{&fakeCtx{topic: "payments", offset: 2, headers: bomb, ctx: context.Background()}, []byte("p"), topics.ReasonHeaderBomb},
		{ctx.record(99), []byte("{}"), topics.ReasonPanic},
	}
	for _, c := range cases {
		if failed := f.call(c.ctx, c.msg); failed != nil {
			t.Fatalf("%s: the processor failed: %v", c.reason, failed)
		}
	}
	// A callback's PanicReject: never retried.
	rej := f.g.Wrap(func(goka.Context, any) { PanicReject("bad_loop_record", errors.New("no stage")) })
	rej(ctx.record(3), []byte("l"))
	if len(f.letters) != 4 {
		t.Fatalf("%d dead letters, want 4", len(f.letters))
	}
	for i, want := range []string{topics.ReasonNullValue, topics.ReasonHeaderBomb, topics.ReasonPanic, "bad_loop_record"} {
		if got := string(f.letters[i].Headers[topics.HeaderReason]); got != want {
			t.Errorf("dead letter %d: reason %q, want %q", i, got, want)
		}
	}
	if f.calls[1] != 0 || f.calls[2] != 0 {
		t.Fatal("a null value or a header bomb reached the callback")
	}
}

func TestFailureWhileStoppingIsNotTheRecords(t *testing.T) {
	f := newGuard(PolicySkip)
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := &fakeCtx{topic: "payments", ctx: stopped}
	for range 5 {
		if f.call(ctx.record(4), []byte("p4"), 4) == nil {
			t.Fatal("the failure did not reach goka")
		}
	}
	if len(f.letters) != 0 || testutil.ToFloat64(f.g.Metrics.Failures.WithLabelValues("test")) != 0 {
		t.Fatalf("a shutdown counted against the record: %d dead letters", len(f.letters))
	}
}

func TestSupervisorCountsRestartsAndReportsHealth(t *testing.T) {
	m := NewMetrics(nil)
	builds := 0
	s := &Supervisor{Name: "test", Metrics: m, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FirstBackoff: time.Millisecond,
		LiveFailures: 3, Build: func() (*goka.Processor, error) {
			builds++
			return nil, errors.New("kafka: client has run out of available brokers")
		}}
	if st := s.Status(); st.Ready || !st.Live {
		t.Fatalf("before it ran: %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitUntil(t, func() bool { return testutil.ToFloat64(m.Restarts.WithLabelValues("test")) >= 3 })
	st := s.Status()
	if st.Ready || st.Live || !strings.Contains(st.Detail, "out of available brokers") || !strings.Contains(st.Detail, "in a row") {
		t.Fatalf("after 3 failures in a row: %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorLeavesAProcessorTheGuardStopped(t *testing.T) {
	m := NewMetrics(nil)
	g := newGuard(PolicyStop).g
	ctx := &fakeCtx{topic: "payments", ctx: context.Background()}
	fx := &guardFixture{g: g, calls: map[int64]int{}}
	for range 4 {
		fx.call(ctx.record(5), []byte("p"), 5)
	}
	builds := 0
	s := &Supervisor{Name: "test", Metrics: m, Guard: g, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FirstBackoff: time.Millisecond,
		Build: func() (*goka.Processor, error) { builds++; return nil, fmt.Errorf("%w", ErrStopped) }}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(rctx) }()
	waitUntil(t, func() bool { return strings.Contains(s.Status().Detail, "stopped") })
	st := s.Status()
	if st.Ready || st.Live || !strings.Contains(st.Detail, "offset 5 failed 3 times") {
		t.Fatalf("stopped processor: %+v", st)
	}
	cancel()
	<-done
	if builds != 1 || testutil.ToFloat64(m.Restarts.WithLabelValues("test")) != 0 {
		t.Fatalf("%d builds, restarts %v: a stopped processor was restarted", builds, testutil.ToFloat64(m.Restarts.WithLabelValues("test")))
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthDetailIsGokasErrorOnOneLine(t *testing.T) {
	err := "1 error occurred:\n\t* error consuming from group consumer: 1 error occurred:\n\t* error processing message (partition=1): panic in callback: boom\ngoroutine 7\n\tmain.go:12\n\n"
	if got := firstLine(err); got != "error consuming from group consumer: error processing message (partition=1): panic in callback: boom" {
		t.Fatalf("firstLine = %q", got)
	}
}
