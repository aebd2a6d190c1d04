package cases

import (
	"slices"
	"strings"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// RuleQuality is how often a rule was right on the cases that were settled.
type RuleQuality struct {
	Rule string
	rules.Quality
}

// Quality measures each rule against the cases' findings. A payment alerted on a case is fraud or legitimate by
// the analyst's verdict on the case, or else by the customer's answer about its alert; an unsure verdict and an
// unanswered alert do not count. Each rule that fired in the payment's alert then has a true positive (fraud) or a
// false positive (legitimate). Cases only hold alerted payments, so there are no false negatives and recall is not
// measured here (rules backtest --labels does that).
func Quality(accounts []*Account) []RuleQuality {
	byRule := map[string]*RuleQuality{}
	for _, a := range accounts {
		for _, c := range a.All() {
			done := map[string]bool{}
			for _, al := range slices.Backward(c.Alerts) { // the newest alert of a payment is its outcome
				if done[al.PaymentID] {
					continue
				}
				done[al.PaymentID] = true
				fraud, ok := finding(c, al.ID)
				if !ok {
					continue
				}
				for _, f := range al.Rules {
					q := byRule[f.Name]
					if q == nil {
						q = &RuleQuality{Rule: f.Name}
						byRule[f.Name] = q
					}
					q.Add(true, fraud, al.Payment.Amount, al.Payment.Currency)
				}
			}
		}
	}
	out := make([]RuleQuality, 0, len(byRule))
	for _, q := range byRule {
		q.Finish()
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b RuleQuality) int { return strings.Compare(a.Rule, b.Rule) })
	return out
}

// finding is whether the payment of the case's alert was fraud, and whether anyone said.
func finding(c *Case, alertID string) (fraud, ok bool) {
	if v := c.Verdict; v != nil && v.Verdict != topics.CaseUnsure {
		return v.Verdict == topics.CaseFraud, true
	}
	if ans := c.AnswerTo(alertID); ans != nil {
		return ans.Answer == topics.AnswerDenied, true
	}
	return false, false
}
