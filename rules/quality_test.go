package rules

import (
	"reflect"
	"testing"
	"time"
)

// Labelled payments measure each ruleset and each rule: exact true and false positives, false negatives,
// precision, recall and the fraud value caught.
func TestBacktestQualityAgainstLabels(t *testing.T) {
	live := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }
`)
	cand := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 3000, currency: EUR, score: 60 }
  - { name: burst, type: count, window: 1m, limit: 1, score: 50 }
`)
	bt := NewBacktest(live, cand, Env{})
	for _, p := range []Payment{
		pay("p1", 0, 2000, "EUR"),                                                   // live alerts (big); candidate not. fraud
		pay("p2", 10*time.Second, 5000, "EUR"),                                      // both alert (big; candidate also burst). fraud
		pay("p3", 20*time.Second, 500, "EUR"),                                       // candidate alerts (burst); live not. legitimate
		pay("p4", 10*time.Minute, 1500, "EUR"),                                      // live alerts (big); candidate not. legitimate
		pay("p5", 11*time.Minute, 100, "EUR"),                                       // nobody alerts. unlabelled
		{ID: "p6", AccountID: "acct_2", Amount: 10, Currency: "EUR", Timestamp: t0}, // nobody alerts. fraud
	} {
		bt.Add(p)
	}
	acct := pay("x", 0, 1, "EUR").AccountID
	v := Verdicts{
		VerdictKey(acct, "p1"): true, VerdictKey(acct, "p2"): true, VerdictKey(acct, "p3"): false,
		VerdictKey(acct, "p4"): false, VerdictKey("acct_2", "p6"): true, VerdictKey(acct, "unknown"): true,
	}
	q := bt.Quality(v)
	want := QualityReport{
		Live: Quality{Labelled: 5, TruePositives: 2, FalsePositives: 1, FalseNegatives: 1, Precision: 2.0 / 3, Recall: 2.0 / 3,
			FraudCaught: map[string]int64{"EUR": 7000}},
		Candidate: Quality{Labelled: 5, TruePositives: 1, FalsePositives: 1, FalseNegatives: 2, Precision: 0.5, Recall: 1.0 / 3,
			FraudCaught: map[string]int64{"EUR": 5000}},
		Rules: []RuleQuality{
			{Rule: "big",
				Live:      Quality{Labelled: 5, TruePositives: 2, FalsePositives: 1, FalseNegatives: 1, Precision: 2.0 / 3, Recall: 2.0 / 3, FraudCaught: map[string]int64{"EUR": 7000}},
				Candidate: Quality{Labelled: 5, TruePositives: 1, FalseNegatives: 2, Precision: 1, Recall: 1.0 / 3, FraudCaught: map[string]int64{"EUR": 5000}}},
			{Rule: "burst",
				Live:      Quality{Labelled: 5, FalseNegatives: 3},
				Candidate: Quality{Labelled: 5, TruePositives: 1, FalsePositives: 1, FalseNegatives: 2, Precision: 0.5, Recall: 1.0 / 3, FraudCaught: map[string]int64{"EUR": 5000}}},
		},
	}
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("quality\n got %+v\nwant %+v", q, want)
	}
}
