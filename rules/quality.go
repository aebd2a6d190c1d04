package rules

import (
	"slices"
	"strings"
)

// Verdicts are labels by account and payment id: true is fraud, false legitimate (topics.Label).
type Verdicts map[string]bool

// VerdictKey is the key of a payment in Verdicts.
func VerdictKey(account, payment string) string { return account + "\x00" + payment }

// Quality measures a ruleset against labelled payments: a payment it alerts that is fraud is a true positive, one
// that is legitimate a false positive, and fraud it does not alert a false negative. Payments without a label do
// not count.
type Quality struct {
	Labelled       int              `json:"labelled"` // labelled payments among those replayed
	TruePositives  int              `json:"true_positives"`
	FalsePositives int              `json:"false_positives"`
	FalseNegatives int              `json:"false_negatives"`
	Precision      float64          `json:"precision"`    // TP / (TP + FP); 0 when nothing labelled was alerted
	Recall         float64          `json:"recall"`       // TP / (TP + FN); 0 when nothing labelled was fraud
	FraudCaught    map[string]int64 `json:"fraud_caught"` // amounts of the true positives, minor units per currency
	// FraudCaughtIn is FraudCaught summed in one reporting currency (QualityReport.Convert); nil without rates.
	FraudCaughtIn *Money `json:"fraud_caught_in,omitempty"`
}

// RuleQuality is Quality for one rule: the labelled payments whose alert it took part in.
type RuleQuality struct {
	Rule      string  `json:"rule"`
	Live      Quality `json:"live"`
	Candidate Quality `json:"candidate"`
}

// QualityReport is a backtest measured against labels, live and candidate side by side.
type QualityReport struct {
	Live      Quality       `json:"live"`
	Candidate Quality       `json:"candidate"`
	Rules     []RuleQuality `json:"rules"`
}

// Quality measures the backtest's outcomes (the newest per payment) against v.
func (b *Backtest) Quality(v Verdicts) QualityReport {
	var r QualityReport
	byRule := map[string]*RuleQuality{}
	rule := func(name string) *RuleQuality {
		if byRule[name] == nil {
			byRule[name] = &RuleQuality{Rule: name}
		}
		return byRule[name]
	}
	for _, rs := range []*Ruleset{b.liveRS, b.candRS} {
		for _, ru := range rs.Rules {
			rule(ru.Name)
		}
	}
	for _, o := range b.order {
		fraud, ok := v[VerdictKey(o.account, o.payment)]
		if !ok {
			continue
		}
		count(&r.Live, o.live, fraud, o.amount, o.currency)
		count(&r.Candidate, o.cand, fraud, o.amount, o.currency)
		for _, side := range []struct {
			d   Decision
			get func(*RuleQuality) *Quality
		}{
			{o.live, func(q *RuleQuality) *Quality { return &q.Live }},
			{o.cand, func(q *RuleQuality) *Quality { return &q.Candidate }},
		} {
			for name, q := range byRule {
				took := side.d.Action != ActionNone && slices.ContainsFunc(side.d.Fired, func(f Fired) bool { return f.Name == name })
				d := Decision{}
				if took {
					d.Action = side.d.Action
				}
				count(side.get(q), d, fraud, o.amount, o.currency)
			}
		}
	}
	finish(&r.Live)
	finish(&r.Candidate)
	for _, q := range byRule {
		finish(&q.Live)
		finish(&q.Candidate)
		r.Rules = append(r.Rules, *q)
	}
	slices.SortFunc(r.Rules, func(a, b RuleQuality) int { return strings.Compare(a.Rule, b.Rule) })
	return r
}

func count(q *Quality, d Decision, fraud bool, amount int64, currency string) {
	q.Add(d.Action != ActionNone, fraud, amount, currency)
}

// Add counts one labelled payment: whether it was alerted, whether it was fraud, and its amount. Call Finish
// when all are counted.
func (q *Quality) Add(alerted, fraud bool, amount int64, currency string) {
	q.Labelled++
	switch {
	case alerted && fraud:
		q.TruePositives++
		if q.FraudCaught == nil {
			q.FraudCaught = map[string]int64{}
		}
		q.FraudCaught[currency] += amount
	case alerted:
		q.FalsePositives++
	case fraud:
		q.FalseNegatives++
	}
}

func finish(q *Quality) { q.Finish() }

// Finish computes precision and recall from the counts.
func (q *Quality) Finish() {
	if n := q.TruePositives + q.FalsePositives; n > 0 {
		q.Precision = float64(q.TruePositives) / float64(n)
	}
	if n := q.TruePositives + q.FalseNegatives; n > 0 {
		q.Recall = float64(q.TruePositives) / float64(n)
	}
}
