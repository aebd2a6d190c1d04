package rules

import (
	"slices"
	"strings"
)

// Backtest replays payments through two rulesets side by side, each on its own in-memory state, and reports
// how the candidate's alerts differ from the live ruleset's. Nothing outside the process is touched.
type Backtest struct {
	live, cand *Engine
	liveRS     *Ruleset
	candRS     *Ruleset
	report     BacktestReport
	accounts   map[string]map[string]struct{} // "live/rule" or "candidate/rule" → accounts
}

// BacktestReport is a backtest's outcome.
type BacktestReport struct {
	Payments   int `json:"payments"`
	Duplicates int `json:"duplicates"` // retried payment ids, scored once
	// LiveAlerts and CandidateAlerts count the payments each ruleset alerts.
	LiveAlerts      int         `json:"live_alerts"`
	CandidateAlerts int         `json:"candidate_alerts"`
	Rules           []RuleStats `json:"rules"`
	// NewlyAlerting are payments the candidate alerts and the live ruleset does not; StopAlerting the reverse;
	// Changed are alerted by both with another action or other rules.
	NewlyAlerting []AlertDiff `json:"newly_alerting"`
	StopAlerting  []AlertDiff `json:"stop_alerting"`
	Changed       []AlertDiff `json:"changed"`
	// Candidate lists every alert of the candidate, in replay order, to compare with what the pipeline emits.
	Candidate []AlertDiff `json:"candidate"`
}

// RuleStats counts, per rule, the alerts it took part in and the accounts they concern.
type RuleStats struct {
	Rule              string `json:"rule"`
	LiveAlerts        int    `json:"live_alerts"`
	CandidateAlerts   int    `json:"candidate_alerts"`
	LiveAccounts      int    `json:"live_accounts"`
	CandidateAccounts int    `json:"candidate_accounts"`
	CandidateShadow   int    `json:"candidate_shadow"` // times it fired in shadow mode in the candidate
}

// AlertDiff describes one payment's outcome under both rulesets.
type AlertDiff struct {
	PaymentID string `json:"payment_id"`
	AccountID string `json:"account_id"`
	Live      string `json:"live"`      // e.g. "review [big-ticket]" or "no alert"
	Candidate string `json:"candidate"` // likewise
}

// NewBacktest starts a backtest of candidate against live with the given outside lists.
func NewBacktest(live, candidate *Ruleset, env Env) *Backtest {
	return &Backtest{live: NewEngine(live, env), cand: NewEngine(candidate, env), liveRS: live, candRS: candidate,
		accounts: map[string]map[string]struct{}{}}
}

// Add replays one payment.
func (b *Backtest) Add(p Payment) {
	b.report.Payments++
	lp, cp := p, p
	ld, dup := b.live.Score(&lp)
	cd, _ := b.cand.Score(&cp)
	if dup {
		b.report.Duplicates++
		return
	}
	l, c := b.outcome("live", p.AccountID, ld), b.outcome("candidate", p.AccountID, cd)
	for _, f := range cd.Shadow {
		b.stats(f.Name).CandidateShadow++
	}
	diff := AlertDiff{PaymentID: p.ID, AccountID: p.AccountID, Live: l, Candidate: c}
	if ld.Action != ActionNone {
		b.report.LiveAlerts++
	}
	if cd.Action != ActionNone {
		b.report.CandidateAlerts++
		b.report.Candidate = append(b.report.Candidate, diff)
	}
	switch {
	case l == c:
	case ld.Action == ActionNone:
		b.report.NewlyAlerting = append(b.report.NewlyAlerting, diff)
	case cd.Action == ActionNone:
		b.report.StopAlerting = append(b.report.StopAlerting, diff)
	default:
		b.report.Changed = append(b.report.Changed, diff)
	}
}

func (b *Backtest) outcome(side, account string, d Decision) string {
	names := make([]string, 0, len(d.Fired))
	for _, f := range d.Fired {
		names = append(names, f.Name)
		if d.Action == ActionNone {
			continue
		}
		st := b.stats(f.Name)
		key := side + "/" + f.Name
		if b.accounts[key] == nil {
			b.accounts[key] = map[string]struct{}{}
		}
		b.accounts[key][account] = struct{}{}
		if side == "live" {
			st.LiveAlerts++
			st.LiveAccounts = len(b.accounts[key])
		} else {
			st.CandidateAlerts++
			st.CandidateAccounts = len(b.accounts[key])
		}
	}
	return describe(d.Action, names)
}

func (b *Backtest) stats(rule string) *RuleStats {
	for i := range b.report.Rules {
		if b.report.Rules[i].Rule == rule {
			return &b.report.Rules[i]
		}
	}
	b.report.Rules = append(b.report.Rules, RuleStats{Rule: rule})
	return &b.report.Rules[len(b.report.Rules)-1]
}

// Report returns the outcome so far, rules sorted by name and every rule of either ruleset listed.
func (b *Backtest) Report() BacktestReport {
	for _, rs := range []*Ruleset{b.liveRS, b.candRS} {
		for _, r := range rs.Rules {
			b.stats(r.Name)
		}
	}
	r := b.report
	r.Rules = slices.Clone(r.Rules)
	slices.SortFunc(r.Rules, func(a, b RuleStats) int { return strings.Compare(a.Rule, b.Rule) })
	return r
}
