package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Rules grouped by another field than the account ("by: device_id") need state per value of that field, kept
// beside the accounts' state: a payment visits the state of each grouping value it has (its device, its IP…),
// collects the grouped rules' outcomes there, and is then scored against its account with those outcomes.

// GroupKey is the state key of a grouping value. It starts with a NUL byte, which account ids never contain
// (ParsePayment rejects control characters), so it cannot collide with an account. "" when the payment has
// no value for the field.
func GroupKey(f Field, p *Payment) string {
	v := p.field(f)
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
func (rs *Ruleset) EvaluateGroup(st *State, p *Payment, f Field) map[string]string {
	st.add(p, rs)
	t := p.Timestamp.UnixMilli()
	out := map[string]string{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if !r.Grouped || r.By != f {
			continue
		}
		from := t - r.Window.Milliseconds()
		what := fmt.Sprintf("for %s %s in %s", f, p.field(f), FormatDuration(r.Window))
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
