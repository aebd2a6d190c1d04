package rules

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rules grouped by another field than the account ("by: device_id") need state per value of that field, kept
// beside the accounts' state: a payment visits the state of each grouping value it has (its device, its IP…),
// collects the grouped rules' outcomes there, and is then scored against its account with those outcomes.

// GroupKey is the state key of a grouping value. It starts with a NUL byte, which account ids never contain
// (ParsePayment rejects control characters), so it cannot collide with an account. "" when the payment has
// no value for the field.
func GroupKey(f Field, p *Payment) string {
	v := f.of(p)
	if v == "" {
		return ""
	}
	return "\x00" + f.String() + "\x00" + v
}

// IsGroupKey reports whether a state key is a grouping value's rather than an account's.
func IsGroupKey(key string) bool { return strings.HasPrefix(key, "\x00") }

// GroupFields lists the fields the ruleset's grouped rules group by, in a fixed order. It is computed once,
// when the file is loaded: the detector asks for every payment.
func (rs *Ruleset) GroupFields() []Field { return rs.groupFields }

func groupFields(rules []Rule) []Field {
	var out []Field
	for _, r := range rules {
		if r.Grouped && !slices.Contains(out, r.By) {
			out = append(out, r.By)
		}
	}
	slices.Sort(out)
	return out
}

// EvaluateGroup adds the payment to the state of its value of field f and returns the outcome of every rule
// grouped by f (rule name → reason, "" when it did not fire). The caller deduplicates, as for EvaluateWith.
//
// By event time, like the account's windows: a payment that arrives after later-stamped payments of the same
// value re-scores their grouped rules, and late lists those that now fire a rule they did not, for the caller to
// take to their accounts (RescoreGrouped).
func (rs *Ruleset) EvaluateGroup(st *State, p *Payment, f Field) (out map[string]string, late []GroupedRescore) {
	beyond := (len(st.events) > 0 || len(st.buckets) > 0) && p.Timestamp.UnixMilli() <= st.newest-rs.Lateness.Milliseconds()
	i := st.add(p, rs)
	t := p.Timestamp.UnixMilli()
	out = rs.groupOutcome(st, f.of(p), f, t)
	if i < 0 {
		return out, nil
	}
	st.setGroupRecord(i, p.AccountID, p.ID, out)
	if beyond {
		return out, nil
	}
	span := rs.groupSpan(f).Milliseconds()
	for j := i - 1; j >= 0 && st.events[j].ts == t; j-- {
		if r, ok := rs.rescoreGroupEvent(st, j, f.of(p), f, p.ID); ok {
			late = append(late, r)
		}
	}
	for j := i + 1; j < len(st.events) && st.events[j].ts < t+span; j++ {
		if r, ok := rs.rescoreGroupEvent(st, j, f.of(p), f, p.ID); ok {
			late = append(late, r)
		}
	}
	return out, late
}

// maxReason bounds a grouped outcome's reason taken from a loop record; the detector writes a few dozen bytes.
const maxReason = 512

// GroupOutcome is the outcome of the rules grouped by f for a payment the state already holds.
func (rs *Ruleset) GroupOutcome(st *State, p *Payment, f Field) map[string]string {
	return rs.groupOutcome(st, f.of(p), f, p.Timestamp.UnixMilli())
}

// GroupedRescore is a payment whose rules grouped by another field than the account fire more since a late
// payment (RaisedBy) of the same value arrived: the outcomes go to the payment's account (RescoreGrouped).
type GroupedRescore struct {
	AccountID string            `json:"account_id"`
	PaymentID string            `json:"payment_id"`
	RaisedBy  string            `json:"raised_by"`
	Key       string            `json:"key"`     // the grouping value's state key: re-scores through two of them are two
	Grouped   map[string]string `json:"grouped"` // rule → reason, for every rule grouped by the field
}

func (rs *Ruleset) groupSpan(f Field) time.Duration {
	var span time.Duration
	for _, r := range rs.Rules {
		if r.Grouped && r.By == f {
			span = max(span, r.Window)
		}
	}
	return span
}

// groupOutcome evaluates the rules grouped by f for a payment stamped t with value v of f.
func (rs *Ruleset) groupOutcome(st *State, v string, f Field, t int64) map[string]string {
	out := map[string]string{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if !r.Grouped || r.By != f {
			continue
		}
		from := t - r.Window.Milliseconds()
		what := fmt.Sprintf("for %s %s in %s", f, v, FormatDuration(r.Window))
		var reason string
		switch r.Type {
		case TypeCount:
			if n := st.count(from, t); n > r.Limit {
				reason = fmt.Sprintf("%d payments %s > limit %d", n, what, r.Limit)
			}
		case TypeSum:
			if sum, _ := rs.sum(st, from, t, r.Currency); sum > r.Limit {
				reason = fmt.Sprintf("total %s %s > limit %s", FormatAmount(sum, r.Currency), what, FormatAmount(r.Limit, r.Currency))
			}
		case TypeDistinct:
			if n := st.distinct(from, t, r.Field, int(r.Limit)+1); int64(n) > r.Limit {
				reason = fmt.Sprintf("%d distinct %s values %s > limit %d", n, r.Field, what, r.Limit)
			}
		}
		out[r.Name] = reason
	}
	return out
}

// setGroupRecord writes the record of exact event i of a grouping value's state: whose payment it is and which
// grouped rules fired for it.
func (st *State) setGroupRecord(i int, account, id string, out map[string]string) {
	if len(st.snaps) > max(st.compactAt, 8<<10) {
		st.compactSnaps()
	}
	off := len(st.snaps)
	b := appendString(appendString(st.snaps, id), account)
	n := 0
	for _, reason := range out {
		if reason != "" {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for name, reason := range out {
		if reason != "" {
			b = binary.LittleEndian.AppendUint32(b, hash32(name))
		}
	}
	st.snaps = b
	st.events[i].recOff, st.events[i].recLen = uint32(off), uint32(len(b)-off)
}

func (rs *Ruleset) rescoreGroupEvent(st *State, j int, v string, f Field, raisedBy string) (GroupedRescore, bool) {
	e := st.events[j]
	if e.recLen == 0 {
		return GroupedRescore{}, false
	}
	d := decoder{b: st.record(e)}
	id, account := d.string(), d.string()
	fired := make([]uint32, d.count(4))
	for k := range fired {
		fired[k] = d.u32()
	}
	if d.err != nil {
		return GroupedRescore{}, false
	}
	out := rs.groupOutcome(st, v, f, e.ts)
	more := false
	for name, reason := range out {
		if reason != "" && !slices.Contains(fired, hash32(name)) {
			more = true
		}
	}
	if !more {
		return GroupedRescore{}, false
	}
	st.setGroupRecord(j, account, id, out)
	return GroupedRescore{AccountID: account, PaymentID: id, RaisedBy: raisedBy, Key: "\x00" + f.String() + "\x00" + v, Grouped: out}, true
}

// RescoreGrouped takes a GroupedRescore to the state of the payment's account: the payment's grouped outcomes
// become g's and it is scored again. It reports the new decision as rescore does; false also when the account
// no longer holds the payment exactly (aggregated, expired) or does not hold it yet.
func (rs *Ruleset) RescoreGrouped(st *State, g GroupedRescore, env Env) (LateDecision, bool) {
	for j := len(st.events) - 1; j >= 0; j-- {
		e := st.events[j]
		if e.recLen == 0 {
			continue
		}
		rec, ok := parseRecord(st.record(e))
		if !ok || rec.p.ID != g.PaymentID {
			continue
		}
		sticky := slices.DeleteFunc(rec.sticky, func(f Fired) bool { _, ok := g.Grouped[f.Name]; return ok })
		for name, reason := range g.Grouped {
			// Only the ruleset's grouped rules, with a reason of a sane length: the loop record is input too.
			if r := rs.rule(name); r != nil && r.Grouped && reason != "" && len(reason) <= maxReason && r.Mode != ModeShadow {
				sticky = append(sticky, Fired{Name: name, Score: r.Score, Reason: reason})
			}
		}
		// The record keeps the grouped outcomes even when the decision does not grow, for the next re-score.
		if rec.ruleset != rs.digestHash {
			return LateDecision{}, false // decided by another ruleset version: see rescore
		}
		st.writeRecord(j, rec.score, rec.action, &rec.p, rec.fired, sticky, rec.ruleset)
		return rs.rescore(st, j, g.AccountID, env)
	}
	return LateDecision{}, false
}
