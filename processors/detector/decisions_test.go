package detector_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// startDeciding is start with decisions on, and a tracker of the decisions topic.
func startDeciding(t *testing.T) (*fixture, *tester.QueueTracker) {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	f := runDetector(t, detector.Config{
		Rules: func() *rules.Ruleset { return rs }, Partitions: 1, Now: func() time.Time { return now }, Decisions: true,
	})
	return f, f.tt.NewQueueTracker(topics.Decisions)
}

func nextDecision(t *testing.T, q *tester.QueueTracker) (*topics.Decision, goka.Headers) {
	t.Helper()
	h, _, v, ok := q.NextWithHeaders()
	if !ok {
		t.Fatal("expected a decision, got none")
	}
	return v.(*topics.Decision), h
}

func TestEveryPaymentGetsADecision(t *testing.T) {
	f, decisions := startDeciding(t)
	f.send("acct_1", payment("p1", "acct_1", 100, 0))                // clean
	f.send("acct_1", payment("p2", "acct_1", 600000, time.Second))   // big-ticket: review
	f.send("acct_1", payment("p3", "acct_1", 600000, 2*time.Second)) // big-ticket and rapid-fire: block
	want := []struct {
		id      string
		outcome topics.Outcome
		score   int
		rules   int
	}{{"p1", topics.OutcomeApprove, 0, 0}, {"p2", topics.OutcomeReview, 60, 1}, {"p3", topics.OutcomeBlock, 100, 2}}
	for _, w := range want {
		d, h := nextDecision(t, decisions)
		if d.PaymentID != w.id || d.AccountID != "acct_1" || d.Decision != w.outcome || d.Score != w.score ||
			len(d.Rules) != w.rules || d.Replayed || !d.DecidedAt.Equal(now) || d.RulesetDigest == "" {
			t.Fatalf("decision %+v, want %+v", d, w)
		}
		if h[topics.HeaderReplyTo] != nil {
			t.Fatalf("decision of %s addressed to %q, though its payment named no reply address", d.PaymentID, h[topics.HeaderReplyTo])
		}
	}
	if _, _, ok := decisions.Next(); ok {
		t.Fatal("more decisions than payments")
	}
}

func TestARepeatedPaymentGetsItsFirstDecisionAgain(t *testing.T) {
	f, decisions := startDeciding(t)
	send := func(id string, amount int64, at time.Duration, replyTo string) {
		f.tt.Consume(topics.Payments, "acct_1", payment(id, "acct_1", amount, at), tester.WithTime(t0),
			tester.WithHeaders(goka.Headers{topics.HeaderReplyTo: []byte(replyTo)}))
	}
	send("p1", 600000, 0, "api-a")
	first, h := nextDecision(t, decisions)
	if first.Decision != topics.OutcomeReview || string(h[topics.HeaderReplyTo]) != "api-a" {
		t.Fatalf("first decision %+v, reply-to %q", first, h[topics.HeaderReplyTo])
	}
	// The same payment again (an API retry through another instance): not scored again, the same outcome.
	send("p1", 600000, 0, "api-b")
	again, h := nextDecision(t, decisions)
	if again.Decision != first.Decision || again.Score != first.Score || !again.Replayed ||
		len(again.Rules) != 1 || again.Rules[0].Name != "big-ticket" || string(h[topics.HeaderReplyTo]) != "api-b" {
		t.Fatalf("replayed decision %+v (reply-to %q), first %+v", again, h[topics.HeaderReplyTo], first)
	}
	// A clean payment repeated is approved again, and still counted once in the windows.
	send("p2", 100, time.Second, "api-a")
	send("p2", 100, time.Second, "api-a")
	for range 2 {
		if d, _ := nextDecision(t, decisions); d.PaymentID != "p2" || d.Decision != topics.OutcomeApprove {
			t.Fatalf("decision %+v", d)
		}
	}
	send("p3", 100, 2*time.Second, "")
	d, h := nextDecision(t, decisions)
	if d.Decision != topics.OutcomeReview || len(d.Rules) != 1 || d.Rules[0].Reason != "3 payments in 5m > limit 2" || h[topics.HeaderReplyTo] != nil {
		t.Fatalf("p3 %+v, headers %v: want rapid-fire over 3 payments (p2's repeat not counted), no reply address", d, h)
	}
}

func TestAReroutedPaymentsDecisionKeepsItsReplyAddress(t *testing.T) {
	f, decisions := startDeciding(t)
	// Keyed by card: the payment goes through the loop to its account and must still be answered.
	f.tt.Consume(topics.Payments, "card_9", payment("p1", "acct_1", 100, 0), tester.WithTime(t0),
		tester.WithHeaders(goka.Headers{topics.HeaderReplyTo: []byte("api-a")}))
	d, h := nextDecision(t, decisions)
	if d.PaymentID != "p1" || string(h[topics.HeaderReplyTo]) != "api-a" {
		t.Fatalf("decision %+v, reply-to %q", d, h[topics.HeaderReplyTo])
	}
	if _, _, ok := decisions.Next(); ok {
		t.Fatal("two decisions for one payment")
	}
}

func TestNoDecisionsUnlessAsked(t *testing.T) {
	f := start(t)
	decisions := f.tt.NewQueueTracker(topics.Decisions)
	f.send("acct_1", payment("p1", "acct_1", 600000, 0))
	f.nextAlert(t)
	if _, _, ok := decisions.Next(); ok {
		t.Fatal("a decision without Decisions")
	}
}

func TestARedeliveredRecordWritesItsLateDecisionsAgain(t *testing.T) {
	f, decisions := startDeciding(t)
	// The state of a detector that scored p2 (which raised a late block for p1) and died before its writes landed.
	late, _ := json.Marshal(topics.Alert{ID: topics.AlertID("acct_1", "p1"), PaymentID: "p1", AccountID: "acct_1", Score: 80,
		Action: topics.ActionBlock, Rules: []topics.Fired{{Name: "rapid-fire", Score: 80, Reason: "r"}}, Late: true, RaisedBy: "p2", DetectedAt: now})
	stored, err := topics.StoredAlerts(nil, [][]byte{late})
	if err != nil {
		t.Fatal(err)
	}
	st := new(rules.State)
	st.Remember("p2", rules.SourceID("payments", 0, 0), stored)
	f.tt.SetTableValue(detector.Table, "acct_1", st)

	f.send("acct_1", payment("p2", "acct_1", 100, 0))
	d, _ := nextDecision(t, decisions)
	if d.PaymentID != "p1" || !d.Late || d.RaisedBy != "p2" || d.Decision != topics.OutcomeBlock || d.Score != 80 || len(d.Rules) != 1 {
		t.Fatalf("late decision written again: %+v", d)
	}
}
