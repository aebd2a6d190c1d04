package rules

import (
	"encoding/json"
	"fmt"
)

// A payment's order of work, the same in the detector (each step in its goka callback, the steps linked by the
// loop topic) and in the Engine (each step on an in-memory state):
//
//  1. ScoreAtGroupValue at each of its grouping values (GroupStages), in order: the grouped rules' outcomes
//     and the re-scores of earlier payments that its arrival raised;
//  2. ScoreAtAccount with those outcomes: the decision, its late re-scores of the account's earlier payments;
//  3. RescoreAtAccount at the account of each payment that step 1 re-scored.
//
// Every step remembers what it did under the record that delivered it (src, see SourceID), so a record delivered
// again (a crash before its offset was committed) gets the same result back and changes nothing, and a payment id
// seen again in another record (a producer's retry) is not scored twice.

// Delivery says whether a step met its payment (or re-score) for the first time.
type Delivery int

const (
	// First: the step scored it and remembered it.
	First Delivery = iota
	// Redelivered: the same record again; the step returns what it stored the first time, changes nothing.
	Redelivered
	// Retried: the same payment id in another record; nothing to do.
	Retried
)

// GroupStage is one grouping value a payment visits: the field and the value's state key.
type GroupStage struct {
	Field Field
	Key   string
}

// GroupStages lists the grouping values of p that the ruleset's grouped rules need, in the order the payment
// visits them; empty without grouped rules or when p has none of their fields.
func (rs *Ruleset) GroupStages(p *Payment) []GroupStage {
	var out []GroupStage
	for _, f := range rs.groupFields {
		if k := GroupKey(f, p); k != "" {
			out = append(out, GroupStage{Field: f, Key: k})
		}
	}
	return out
}

// GroupStep is what a payment's stage at a grouping value produced: the outcomes of the rules grouped by its
// field (rule → reason, "" when it did not fire), to carry to the account, and the re-scores for the accounts
// of earlier payments that this one's arrival raised.
type GroupStep struct {
	Outcome  map[string]string `json:"outcome"`
	Rescores []GroupedRescore  `json:"rescores,omitempty"`
}

// ScoreAtGroupValue is step 1 at the grouping value whose state is st. A redelivered record gets its first
// delivery's step back; a producer's retry gets the outcome without the re-scores, which the first delivery
// took to their accounts.
func (rs *Ruleset) ScoreAtGroupValue(st *State, p *Payment, f Field, src uint64) (GroupStep, Delivery, error) {
	var gs GroupStep
	prevSrc, stored, seen := st.Lookup(p.ID)
	switch {
	case seen && stored != nil:
		if err := gs.decode(stored); err != nil {
			return gs, First, fmt.Errorf("stored grouped outcome: %w", err)
		}
		if prevSrc != src {
			gs.Rescores = nil
			return gs, Retried, nil
		}
		return gs, Redelivered, nil
	case seen:
		// Held long enough to have left the recent ids: the outcome is computed again, nothing is added.
		return GroupStep{Outcome: rs.GroupOutcome(st, p, f)}, Retried, nil
	}
	gs.Outcome, gs.Rescores = rs.EvaluateGroup(st, p, f)
	b, err := json.Marshal(gs)
	if err != nil {
		return gs, First, fmt.Errorf("store grouped outcome: %w", err)
	}
	st.Remember(p.ID, src, b)
	return gs, First, nil
}

// decode reads a stored GroupStep, or a bare outcome map (the form state written before re-scores were stored holds).
func (g *GroupStep) decode(b []byte) error {
	if err := json.Unmarshal(b, g); err == nil && g.Outcome != nil {
		return nil
	}
	*g = GroupStep{}
	return json.Unmarshal(b, &g.Outcome)
}

// ScoreAtAccount is step 2 at the account whose state is st; env.Grouped holds step 1's outcomes. On First it
// scores the payment and remembers it, and the caller keeps what a redelivery must send again with KeepAlerts.
// On Redelivered and Retried, stored is what was kept for the payment (nil if nothing, or no longer).
func (rs *Ruleset) ScoreAtAccount(st *State, p *Payment, env Env, src uint64) (d Decision, del Delivery, stored []byte) {
	if prevSrc, alert, seen := st.Lookup(p.ID); seen {
		if prevSrc == src {
			return Decision{}, Redelivered, alert
		}
		return Decision{}, Retried, alert
	}
	d = rs.EvaluateWith(st, p, env)
	st.Remember(p.ID, src, nil)
	return d, First, nil
}

// RescoreAtAccount is step 3 at the account whose state is st: the payment g names takes its new grouped
// outcomes and is scored again; ok reports a decision that grew, for a late alert. As with ScoreAtAccount, the
// caller keeps the alert with KeepAlerts, and a redelivery gets it back as stored.
func (rs *Ruleset) RescoreAtAccount(st *State, g GroupedRescore, env Env, src uint64) (l LateDecision, ok bool, del Delivery, stored []byte) {
	id := "\x00rescore\x00" + g.PaymentID + "\x00" + g.RaisedBy + "\x00" + g.Key
	if prevSrc, alert, seen := st.Lookup(id); seen {
		if prevSrc == src {
			return LateDecision{}, false, Redelivered, alert
		}
		return LateDecision{}, false, Retried, nil
	}
	l, ok = rs.RescoreGrouped(st, g, env)
	st.Remember(id, src, nil)
	return l, ok, First, nil
}
