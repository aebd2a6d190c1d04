package rules

import (
	"slices"
	"strings"
)

// Backtest replays payments through two rulesets side by side, each on its own in-memory state, and reports
// how the candidate's alerts differ from the live ruleset's. Nothing outside the process is touched. A payment's
// outcome is its newest, as in the alerts topic: a late payment may re-score earlier-replayed ones.
type Backtest struct {
	live, cand *Engine
	liveRS     *Ruleset
	candRS     *Ruleset
	report     BacktestReport
	outcomes   map[string]*outcomes // by account and payment id
	order      []*outcomes          // in replay order
}

type outcomes struct {
	account, payment string
	amount           int64
	currency         string
	live, cand       Decision
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
	// Quality measures both rulesets against labelled payments, when labels were given (Backtest.Quality).
	Quality *QualityReport `json:"quality,omitempty"`
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
		outcomes: map[string]*outcomes{}}
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
	for _, f := range cd.Shadow {
		b.stats(f.Name).CandidateShadow++
	}
	o := &outcomes{account: p.AccountID, payment: p.ID, amount: p.Amount, currency: p.Currency, live: ld, cand: cd}
	b.outcomes[p.AccountID+"\x00"+p.ID] = o
	b.order = append(b.order, o)
	for _, l := range ld.Late {
		if o := b.outcomes[l.Payment.AccountID+"\x00"+l.Payment.ID]; o != nil {
			o.live = l.Decision
		}
	}
	for _, l := range cd.Late {
		if o := b.outcomes[l.Payment.AccountID+"\x00"+l.Payment.ID]; o != nil {
			o.cand = l.Decision
		}
	}
}

func (b *Backtest) outcome(r *BacktestReport, accounts map[string]map[string]struct{}, side, account string, d Decision) string {
	names := make([]string, 0, len(d.Fired))
	for _, f := range d.Fired {
		names = append(names, f.Name)
		if d.Action == ActionNone {
			continue
		}
		st := stats(r, f.Name)
		key := side + "/" + f.Name
		if accounts[key] == nil {
			accounts[key] = map[string]struct{}{}
		}
		accounts[key][account] = struct{}{}
		if side == "live" {
			st.LiveAlerts++
			st.LiveAccounts = len(accounts[key])
		} else {
			st.CandidateAlerts++
			st.CandidateAccounts = len(accounts[key])
		}
	}
	return describe(d.Action, names)
}

func (b *Backtest) stats(rule string) *RuleStats { return stats(&b.report, rule) }

func stats(r *BacktestReport, rule string) *RuleStats {
	for i := range r.Rules {
		if r.Rules[i].Rule == rule {
			return &r.Rules[i]
		}
	}
	r.Rules = append(r.Rules, RuleStats{Rule: rule})
	return &r.Rules[len(r.Rules)-1]
}

// Report returns the outcome so far, rules sorted by name and every rule of either ruleset listed.
func (b *Backtest) Report() BacktestReport {
	r := b.report
	r.Rules = slices.Clone(r.Rules)
	for _, rs := range []*Ruleset{b.liveRS, b.candRS} {
		for _, rule := range rs.Rules {
			stats(&r, rule.Name)
		}
	}
	accounts := map[string]map[string]struct{}{}
	for _, o := range b.order {
		l, c := b.outcome(&r, accounts, "live", o.account, o.live), b.outcome(&r, accounts, "candidate", o.account, o.cand)
		diff := AlertDiff{PaymentID: o.payment, AccountID: o.account, Live: l, Candidate: c}
		if o.live.Action != ActionNone {
			r.LiveAlerts++
		}
		if o.cand.Action != ActionNone {
			r.CandidateAlerts++
			r.Candidate = append(r.Candidate, diff)
		}
		switch {
		case l == c:
		case o.live.Action == ActionNone:
			r.NewlyAlerting = append(r.NewlyAlerting, diff)
		case o.cand.Action == ActionNone:
			r.StopAlerting = append(r.StopAlerting, diff)
		default:
			r.Changed = append(r.Changed, diff)
		}
	}
	slices.SortFunc(r.Rules, func(a, b RuleStats) int { return strings.Compare(a.Rule, b.Rule) })
	return r
}
