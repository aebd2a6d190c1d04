package confirmations_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/fraudpipe/fraudpipe/processors/confirmations"
	"github.com/fraudpipe/fraudpipe/topics"
)

var now = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func run(t *testing.T) (*tester.Tester, *tester.QueueTracker, *tester.QueueTracker) {
	t.Helper()
	tt := tester.New(t)
	p, err := confirmations.New(nil, confirmations.Config{Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: confirmations.NewMetrics(nil)}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	return tt, tt.NewQueueTracker(topics.PaymentActions), tt.NewQueueTracker(topics.CustomerAnswersDLQ)
}

func answer(alert string, a topics.Answer) []byte {
	b, _ := json.Marshal(topics.CustomerAnswer{AlertID: alert, AccountID: "acct_1", PaymentID: "pay_" + alert, CardID: "card_9",
		Action: topics.ActionBlock, Answer: a, Channel: "web", AnsweredAt: now})
	return b
}

func drain(t *testing.T, q *tester.QueueTracker) []string {
	t.Helper()
	var out []string
	for {
		key, v, ok := q.Next()
		if !ok {
			return out
		}
		c := v.(*topics.PaymentCommand)
		if key != c.AccountID {
			t.Fatalf("command keyed %q for account %q", key, c.AccountID)
		}
		out = append(out, c.ID)
	}
}

// Double clicks, a retried POST, a redelivered record and a change of mind give each alert's commands once, as
// the first answer set them.
func TestEachAlertsCommandsAreIssuedOnce(t *testing.T) {
	tt, actions, dlq := run(t)
	labels := tt.NewQueueTracker(topics.Labels)
	for _, a := range [][]byte{
		answer("a1", topics.AnswerDenied), answer("a1", topics.AnswerDenied), answer("a1", topics.AnswerConfirmed),
		answer("a2", topics.AnswerConfirmed), answer("a2", topics.AnswerConfirmed), answer("a2", topics.AnswerDenied),
	} {
		tt.Consume(topics.CustomerAnswers, "acct_1", a)
	}
	got := drain(t, actions)
	want := []string{"a1:confirm-block", "a1:block-card", "a2:release"}
	if len(got) != len(want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("commands %v, want %v", got, want)
		}
	}
	if _, _, ok := dlq.Next(); ok {
		t.Fatal("a valid answer was dead-lettered")
	}
	var got2 []string
	for {
		key, v, ok := labels.Next()
		if !ok {
			break
		}
		l := v.(*topics.Label)
		got2 = append(got2, key+"="+string(l.Verdict)+"/"+l.Source)
	}
	if strings.Join(got2, " ") != "acct_1/pay_a1=fraud/customer acct_1/pay_a2=legitimate/customer" {
		t.Fatalf("labels %v, want one per alert from its first answer", got2)
	}
}

// Answers that are not JSON, name no alert, say neither yes nor no, or sit under another account's key go to
// the dead-letter topic with the reason; the saga goes on.
func TestBadAnswersAreDeadLettered(t *testing.T) {
	tt, actions, dlq := run(t)
	tt.Consume(topics.CustomerAnswers, "acct_1", []byte("{not json"))
	tt.Consume(topics.CustomerAnswers, "acct_1", answer("", topics.AnswerDenied))
	tt.Consume(topics.CustomerAnswers, "acct_1", answer("a1", "perhaps"))
	tt.Consume(topics.CustomerAnswers, "acct_2", answer("a1", topics.AnswerDenied))
	tt.Consume(topics.CustomerAnswers, "acct_1", nil)
	tt.Consume(topics.CustomerAnswers, "acct_1", answer("a1", topics.AnswerConfirmed))
	for i := range 5 {
		h, _, _, ok := dlq.NextWithHeaders()
		if !ok {
			t.Fatalf("dead letter %d missing", i)
		}
		if r := string(h[topics.HeaderReason]); r != topics.ReasonBadAnswer && r != topics.ReasonNullValue {
			t.Fatalf("dead letter %d: reason %q", i, r)
		}
	}
	if got := drain(t, actions); len(got) != 1 || got[0] != "a1:release" {
		t.Fatalf("after the bad answers: %v", got)
	}
}
