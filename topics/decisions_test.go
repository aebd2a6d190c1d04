package topics_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

func TestAppendDecisionWritesWhatJSONMarshalWrites(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	for _, d := range []topics.Decision{
		{PaymentID: "p1", AccountID: "acct_1", Decision: topics.OutcomeApprove, Rules: []topics.Fired{}, RulesetVersion: 3},
		{PaymentID: `p"2\`, AccountID: "acct <é>", Decision: topics.OutcomeBlock, Score: 100, RulesetVersion: 12, RulesetDigest: "abc",
			Rules:     []topics.Fired{{Name: "big-ticket", Score: 60, Reason: "amount 6,000.00 EUR > limit 5,000.00 EUR"}, {Name: "x", Score: 40, Reason: "\u2028 & \x01"}},
			ArrivedAt: at, DecidedAt: at.Add(time.Millisecond), Replayed: true},
		{PaymentID: "p3", AccountID: "acct_1", Decision: topics.OutcomeBlock, Score: 80, Rules: []topics.Fired{}, DecidedAt: at, Late: true, RaisedBy: "p9"},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got := topics.AppendDecision(nil, &d)
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want, &b)
		if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
			t.Fatalf("AppendDecision\n%s\njson.Marshal\n%s", got, want)
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
