package detector_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/fraudpipe/fraudpipe/processors"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Every record the detector cannot process is dead-lettered once, in a form payments.dlq accepts, and the
// payments after it are scored.
func TestPoisonPaymentsAreDeadLetteredAndScoringGoesOn(t *testing.T) {
	f := start(t)
	huge := append([]byte(`{"id":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	f.send("acct_1", huge)
	f.tt.Consume(string(topics.Payments), "acct_1", nil) // a null value (tombstone)
	bomb := goka.Headers{}
	for i := range processors.MaxHeaders + 1 {
		bomb[strconv.Itoa(i)] = []byte("x")
	}
	f.tt.Consume(string(topics.Payments), "acct_1", payment("bomb", "acct_1", 100, 0), tester.WithHeaders(bomb))
	f.tt.Consume(detector.Loop, "acct_1", payment("loop", "acct_1", 100, 0),
		tester.WithHeaders(goka.Headers{topics.HeaderStage: []byte("0"), topics.HeaderGrouped: []byte("{not json")}))

	want := []string{rules.ReasonTooLarge, topics.ReasonNullValue, topics.ReasonHeaderBomb, topics.ReasonBadLoopRecord}
	for i, reason := range want {
		h, key, v, ok := f.dlq.NextWithHeaders()
		if !ok {
			t.Fatalf("no dead letter %d (%s)", i, reason)
		}
		if got := string(h[topics.HeaderReason]); got != reason || key != "acct_1" {
			t.Fatalf("dead letter %d: reason %q key %q, want %q", i, got, key, reason)
		}
		if reason == rules.ReasonTooLarge {
			b, _ := v.([]byte)
			if len(b) != processors.MaxDeadLetterValue || string(h[topics.HeaderOriginalSize]) != strconv.Itoa(len(huge)) ||
				len(h[topics.HeaderOriginalSHA256]) != 64 {
				t.Fatalf("too large: %d bytes, headers %q", len(b), h)
			}
		}
	}
	if _, _, v, ok := f.dlq.NextWithHeaders(); ok {
		t.Fatalf("one dead letter too many: %s", v)
	}
	for i := range 3 {
		f.send("acct_1", payment("ok"+strconv.Itoa(i), "acct_1", 100, time.Duration(i)*time.Second))
	}
	if a := f.nextAlert(t); a.PaymentID != "ok2" {
		t.Fatalf("alert for %s, want ok2", a.PaymentID)
	}
}
