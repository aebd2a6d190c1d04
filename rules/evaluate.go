package rules

import (
	"fmt"
	"math"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Action and Fired are the wire types of an alert (package topics), named here for the rules that decide them.
type (
	Action = topics.Action
	Fired  = topics.Fired
)

// The actions. A payment below the review threshold has ActionNone and produces no alert.
const (
	ActionNone   = topics.ActionNone
	ActionReview = topics.ActionReview
	ActionBlock  = topics.ActionBlock
)

// Decision is the outcome of evaluating one payment.
type Decision struct {
	Score  int // sum of the fired rules' scores, capped at 100
	Action Action
	Fired  []Fired
	// Unconverted names the sum rules that skipped some payments of the window because the rules file has no
	// rate for their currency: the caller counts them in a metric so the gap is visible.
	Unconverted []string
	// Shadow lists the shadow-mode rules that fired: counted, never scored.
	Shadow []Fired
	// Cooled names the rules that fired but stayed quiet because they alerted this account within their cooldown.
	Cooled []string
	// Allowed says which allow-list entry suppressed the alert ("list:field=value"); Action is then none.
	Allowed string
	// Errors names the expression rules whose evaluation failed (e.g. over the cost limit); they did not fire.
	Errors []string
	// Late lists the payments of the account stamped at or after this one, but arrived before it, that its
	// arrival re-scored into an alert or into a stronger one (review to block, or more rules).
	Late []LateDecision
	// BeyondLateness reports a payment that arrived more than the ruleset's lateness behind its account's newest
	// payment: it was scored over what the state still held and re-scored nothing.
	BeyondLateness bool
}

// LateDecision is a payment's new outcome after a later arrival re-scored it.
type LateDecision struct {
	// Payment is the re-scored payment as the state keeps it: every field but the timestamp's sub-millisecond
	// digits and zone (it is in UTC).
	Payment  Payment
	Decision Decision
	// Changed names the rules that fire now and did not when the payment was last decided.
	Changed []string
}

// Env is what an evaluation needs from outside the account's state.
type Env struct {
	// Lists adds entries to the ruleset's file-backed lists (the detector's view of the lists topic); may be nil.
	Lists ListSource
	// Grouped holds the outcome of the rules grouped by another field than the account (EvaluateGroup), by
	// rule name: the reason, or "" when it did not fire. Those rules are not evaluated against the account.
	Grouped map[string]string
}

// ListSource answers list lookups.
type ListSource interface {
	Contains(list, value string) bool
}

func (rs *Ruleset) onList(env Env, list, value string) bool {
	if value == "" {
		return false
	}
	if _, ok := rs.Lists[list][value]; ok {
		return true
	}
	return env.Lists != nil && env.Lists.Contains(list, value)
}

// Evaluate is EvaluateWith without outside lists.
func (rs *Ruleset) Evaluate(st *State, p *Payment) Decision { return rs.EvaluateWith(st, p, Env{}) }

// EvaluateWith adds the payment to the account's state and scores it against the rules, by event time: the window
// of a rule for a payment stamped t is (t − window, t] over every payment of the account stamped in it, whichever
// arrived first. A payment that arrives after payments of its account stamped at or after its own time re-scores
// those whose windows it enters (Decision.Late), as long as it is no later than the ruleset's lateness.
//
// The caller is responsible for duplicates (State.Lookup) before calling it: it adds unconditionally.
func (rs *Ruleset) EvaluateWith(st *State, p *Payment, env Env) Decision {
	var d Decision
	t := p.Timestamp.UnixMilli()
	d.BeyondLateness = (len(st.events) > 0 || len(st.buckets) > 0) && t <= st.newest-rs.Lateness.Milliseconds()
	// Expressions read the account's aggregates before this payment, so they run before it is added.
	var exprFired []bool
	if rs.hasExpr {
		exprFired = make([]bool, len(rs.Rules))
		for i := range rs.Rules {
			if r := &rs.Rules[i]; r.Type == TypeExpression {
				ok, err := r.prog.eval(rs, st, p)
				if err != nil {
					d.Errors = append(d.Errors, r.Name)
				}
				exprFired[i] = ok
			}
		}
	}
	i := st.add(p, rs)
	sticky := rs.decide(st, p, t, env, exprFired, false, nil, &d)
	rs.startCooldowns(st, &d, t)
	if i >= 0 {
		st.setRecord(i, p, &d, sticky, rs.digestHash)
	}
	rs.updateProfile(st, p)
	if i >= 0 && !d.BeyondLateness {
		d.Late = rs.rescoreAround(st, i, p.AccountID, env)
	}
	return d
}

// decide scores payment p, stamped t and already in st, into d. Live, it evaluates every rule and returns the
// outcomes that a re-score cannot compute again (see stickyRule). Re-scoring, it takes those outcomes from
// stored, skips shadow rules, and reports no metrics' material.
func (rs *Ruleset) decide(st *State, p *Payment, t int64, env Env, exprFired []bool, rescore bool, stored []Fired, d *Decision) (sticky []Fired) {
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if rescore && r.Mode == ModeShadow {
			continue
		}
		from := t - r.Window.Milliseconds()
		var reason string
		switch {
		case rescore && stickyRule(r):
			for _, f := range stored {
				if f.Name == r.Name {
					reason = f.Reason
				}
			}
		case r.Grouped:
			reason = env.Grouped[r.Name]
		case r.Type == TypeAmount:
			v, ok := rs.convert(p.Amount, packCurrency(p.Currency), r.Currency)
			if ok && v > r.Limit {
				reason = fmt.Sprintf("amount %s > limit %s", FormatAmount(v, r.Currency), FormatAmount(r.Limit, r.Currency))
			} else if !ok {
				d.Unconverted = append(d.Unconverted, r.Name)
			}
		case r.Type == TypeCount:
			if n := st.count(from, t); n > r.Limit {
				reason = fmt.Sprintf("%d payments in %s > limit %d", n, FormatDuration(r.Window), r.Limit)
			}
		case r.Type == TypeSum:
			sum, complete := rs.sum(st, from, t, r.Currency)
			if !complete {
				d.Unconverted = append(d.Unconverted, r.Name)
			}
			if sum > r.Limit {
				reason = fmt.Sprintf("total %s in %s > limit %s", FormatAmount(sum, r.Currency), FormatDuration(r.Window), FormatAmount(r.Limit, r.Currency))
			}
		case r.Type == TypeDistinct:
			if n := st.distinct(from, t, r.Field, int(r.Limit)+1); int64(n) > r.Limit {
				reason = fmt.Sprintf("%d distinct %s values in %s > limit %d", n, r.Field, FormatDuration(r.Window), r.Limit)
			}
		case r.Type == TypeList:
			if v := r.Field.of(p); rs.onList(env, r.List, v) {
				reason = fmt.Sprintf("%s %s is on list %s", r.Field, v, r.List)
			}
		case r.Type == TypeDeviation:
			reason = rs.deviation(st, p, r, d)
		case r.Type == TypeTravel:
			reason = travel(st, p, r)
		case r.Type == TypeExpression:
			fired := false
			if exprFired != nil {
				fired = exprFired[i]
			} else {
				// Re-scoring: the aggregates exclude payments stamped at t or later, so p being in st already
				// changes nothing.
				fired, _ = r.prog.eval(rs, st, p)
			}
			if fired {
				reason = "expression true: " + r.Expr
			}
		}
		if !rescore && reason != "" && r.Mode != ModeShadow && stickyRule(r) {
			sticky = append(sticky, Fired{Name: r.Name, Score: r.Score, Reason: reason})
		}
		switch {
		case reason == "":
		case r.Mode == ModeShadow:
			d.Shadow = append(d.Shadow, Fired{Name: r.Name, Score: r.Score, Reason: reason})
		case r.Cooldown > 0 && st.cooling(r.Name, t):
			d.Cooled = append(d.Cooled, r.Name)
		default:
			d.Fired = append(d.Fired, Fired{Name: r.Name, Score: r.Score, Reason: reason})
			d.Score += r.Score
		}
	}
	if rescore {
		d.Unconverted = nil
	}
	d.Score = min(d.Score, 100)
	switch {
	case len(d.Fired) == 0 || d.Score < rs.Thresholds.Review:
		d.Action = ActionNone
	case d.Score >= rs.Thresholds.Block:
		d.Action = ActionBlock
	default:
		d.Action = ActionReview
	}
	if d.Action != ActionNone {
		for _, a := range rs.Allow {
			if v := a.Field.of(p); rs.onList(env, a.List, v) {
				d.Allowed, d.Action = a.List+":"+a.Field.String()+"="+v, ActionNone
				break
			}
		}
	}
	return sticky
}

// startCooldowns quiets the fired rules that have a cooldown for the payments stamped after t, once d alerts.
func (rs *Ruleset) startCooldowns(st *State, d *Decision, t int64) {
	if d.Action == ActionNone {
		return
	}
	for _, f := range d.Fired {
		if r := rs.rule(f.Name); r != nil && r.Cooldown > 0 {
			st.startCooldown(r.Name, t, t+r.Cooldown.Milliseconds())
		}
	}
}

func (rs *Ruleset) rule(name string) *Rule {
	for i := range rs.Rules {
		if rs.Rules[i].Name == name {
			return &rs.Rules[i]
		}
	}
	return nil
}

func (s *State) count(from, to int64) int64 {
	n := int64(len(s.span(from, to)))
	for i := range s.buckets {
		if s.buckets[i].overlaps(from, to) {
			n += s.buckets[i].count
		}
	}
	return n
}

// sum adds up the window's amounts in currency cur. complete is false when some amounts could not be converted
// and were left out.
func (rs *Ruleset) sum(s *State, from, to int64, cur string) (total int64, complete bool) {
	complete = true
	add := func(amount int64, c uint16) {
		if v, ok := rs.convert(amount, c, cur); ok {
			total += v
		} else {
			complete = false
		}
	}
	for _, e := range s.span(from, to) {
		add(e.amount, e.cur)
	}
	for i := range s.buckets {
		if s.buckets[i].overlaps(from, to) {
			for _, c := range s.buckets[i].sums {
				add(c.sum, c.cur)
			}
		}
	}
	return total, complete
}

// distinct counts the distinct non-empty values of field f in the window, stopping at enough: a rule only needs
// to know whether the count exceeds its limit, and stopping there keeps the count on the stack.
func (s *State) distinct(from, to int64, f Field, enough int) int {
	var buf [MaxDistinctLimit + 1]uint32
	vals := buf[:0]
	add := func(h uint32) {
		if h == 0 || len(vals) >= enough {
			return
		}
		for _, v := range vals {
			if v == h {
				return
			}
		}
		vals = append(vals, h)
	}
	for _, e := range s.span(from, to) {
		add(e.attrs[f])
	}
	for i := range s.buckets {
		if s.buckets[i].overlaps(from, to) {
			for _, h := range s.buckets[i].attrs[f] {
				add(h)
			}
		}
	}
	return len(vals)
}

// convert turns minor units of currency from into minor units of currency to. Same-currency amounts are exact;
// across currencies it needs a rate for both in the rules file, and reports false without one, because adding
// up different currencies unconverted would be silently wrong.
func (rs *Ruleset) convert(amount int64, from uint16, to string) (int64, bool) {
	if from == packCurrency(to) {
		return amount, true
	}
	fromCode := unpackCurrency(from)
	rf, ok1 := rs.Rates[fromCode]
	rt, ok2 := rs.Rates[to]
	if !ok1 || !ok2 {
		return 0, false
	}
	major := float64(amount) / math.Pow10(MinorDigits(fromCode)) * rf / rt
	return int64(math.Round(major * math.Pow10(MinorDigits(to)))), true
}
