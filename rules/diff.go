package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Changes is what differs between two rulesets, as `fraudpipe rules plan` and the reload log show it.
type Changes struct {
	Added, Removed, Changed []string // rule names
	Settings                []string // thresholds, currencies, state, lists, allow: "field: old → new"
}

// Empty reports whether nothing differs.
func (c Changes) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.Changed)+len(c.Settings) == 0
}

func (c Changes) String() string {
	var b strings.Builder
	for _, n := range c.Added {
		fmt.Fprintf(&b, "+ rule %s\n", n)
	}
	for _, n := range c.Removed {
		fmt.Fprintf(&b, "- rule %s\n", n)
	}
	for _, n := range c.Changed {
		fmt.Fprintf(&b, "~ rule %s\n", n)
	}
	for _, s := range c.Settings {
		fmt.Fprintf(&b, "~ %s\n", s)
	}
	if c.Empty() {
		b.WriteString("no changes\n")
	}
	return b.String()
}

// sameRule compares two rules by what they do: where they stand in the file does not matter.
func sameRule(a, b Rule) bool {
	a.Line, b.Line = 0, 0
	a.prog, b.prog = nil, nil
	return a == b
}

// Diff compares two rulesets; old may be nil (everything is added).
func Diff(old, cur *Ruleset) Changes {
	var c Changes
	if old == nil {
		old = &Ruleset{}
	}
	index := func(rs *Ruleset) map[string]Rule {
		m := map[string]Rule{}
		for _, r := range rs.Rules {
			m[r.Name] = r
		}
		return m
	}
	o, n := index(old), index(cur)
	for name, r := range n {
		if prev, ok := o[name]; !ok {
			c.Added = append(c.Added, name)
		} else if !sameRule(prev, r) {
			c.Changed = append(c.Changed, name+": "+describeChange(prev, r))
		}
	}
	for name := range o {
		if _, ok := n[name]; !ok {
			c.Removed = append(c.Removed, name)
		}
	}
	setting := func(name string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			c.Settings = append(c.Settings, fmt.Sprintf("%s: %v → %v", name, a, b))
		}
	}
	setting("thresholds", old.Thresholds, cur.Thresholds)
	setting("currencies.base", old.Base, cur.Base)
	setting("currencies.rates", old.Rates, cur.Rates)
	setting("state.retention", FormatDuration(old.Retention), FormatDuration(cur.Retention))
	setting("state.max_events", old.MaxEvents, cur.MaxEvents)
	setting("state.lateness", FormatDuration(old.Lateness), FormatDuration(cur.Lateness))
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]map[string]struct{}{old.Lists, cur.Lists} {
			for k := range m {
				if !seen[k] && !yield(k) {
					return
				}
				seen[k] = true
			}
		}
	}) {
		if fmt.Sprint(old.Lists[name]) != fmt.Sprint(cur.Lists[name]) {
			c.Settings = append(c.Settings, fmt.Sprintf("lists.%s: %d → %d entries in files", name, len(old.Lists[name]), len(cur.Lists[name])))
		}
	}
	setting("allow", old.Allow, cur.Allow)
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.Sort(c.Changed)
	return c
}

// describeChange names the settings of a rule that changed.
func describeChange(a, b Rule) string {
	var parts []string
	add := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			parts = append(parts, fmt.Sprintf("%s %v → %v", name, x, y))
		}
	}
	add("type", a.Type, b.Type)
	add("limit", a.Limit, b.Limit)
	add("score", a.Score, b.Score)
	add("window", FormatDuration(a.Window), FormatDuration(b.Window))
	add("field", a.Field, b.Field)
	add("currency", a.Currency, b.Currency)
	add("mode", a.Mode, b.Mode)
	add("cooldown", FormatDuration(a.Cooldown), FormatDuration(b.Cooldown))
	add("list", a.List, b.List)
	add("factor", a.Factor, b.Factor)
	add("min_payments", a.MinPayments, b.MinPayments)
	add("max_speed_kmh", a.MaxSpeed, b.MaxSpeed)
	add("min_distance_km", a.MinDistance, b.MinDistance)
	add("expr", a.Expr, b.Expr)
	return strings.Join(parts, ", ")
}
