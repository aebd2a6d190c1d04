// Package reference is the event-time contract of detection written straight from its definition, for tests:
// a payment's outcome is computed over every payment of its account stamped in (t − window, t], with no state,
// no arrival order and no bound. Tests at every tier (rules, the detector processor, the pipeline end to end)
// compare what they observe with it.
package reference

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
)

// Rules is the ruleset the reference implements: one rule of each kind whose outcome is a function of the
// data (amount, count, sum, distinct, list, and a count grouped by device across accounts) and an allow list,
// with lateness enough for any test stream.
const Rules = `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
state: { lateness: 24h }
lists:
  blocked-merchants: {}
  trusted-devices: {}
allow:
  - { list: trusted-devices, field: device_id }
rules:
  - { name: big-ticket, type: amount, limit: 500000, score: 60 }
  - { name: rapid-fire, type: count, window: 5m, limit: 4, score: 50 }
  - { name: spend-surge, type: sum, window: 1h, limit: 1000000, score: 50 }
  - { name: globetrotter, type: distinct, field: country, window: 30m, limit: 2, score: 80 }
  - { name: blocked-merchant, type: list, field: merchant_id, list: blocked-merchants, score: 90 }
  - { name: shared-device, type: count, by: device_id, window: 10m, limit: 3, score: 50 }
`

// Lists holds the entries of the lists Rules names, as the lists topic would: m_bad is a blocked merchant,
// dev_trusted a trusted device.
type Lists struct{}

// Contains implements rules.ListSource.
func (Lists) Contains(list, value string) bool {
	return list == "blocked-merchants" && value == "m_bad" || list == "trusted-devices" && value == "dev_trusted"
}

// ListEntries are Lists' entries as "LIST/VALUE" keys of the lists topic.
var ListEntries = []string{"blocked-merchants/m_bad", "trusted-devices/dev_trusted"}

// Start is when Stream's payments begin.
var Start = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// Stream returns the payments of accounts accounts over a few hours: bursts that trip the count and sum rules,
// country hops, blocked merchants, trusted devices, payments stamped at the same millisecond, and producer
// retries (the same payment twice). The same seed gives the same stream.
func Stream(seed uint64, accounts int) []rules.Payment {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []rules.Payment
	for a := range accounts {
		acct := fmt.Sprintf("acct_%d_%d", seed, a)
		ts := Start
		for i := range 20 + rng.IntN(60) {
			switch rng.IntN(12) {
			case 0, 1:
				ts = ts.Add(time.Duration(rng.IntN(20)) * time.Second) // a burst
			case 2:
				// same millisecond as the previous payment
			default:
				ts = ts.Add(time.Duration(rng.IntN(30)) * time.Minute)
			}
			p := rules.Payment{ID: fmt.Sprintf("pay_%d_%d_%d", seed, a, i), AccountID: acct, Currency: "EUR", Timestamp: ts,
				Amount: int64(1000 + rng.IntN(50000)), MerchantID: fmt.Sprintf("m_%d", rng.IntN(20)), Country: "DE",
				DeviceID: fmt.Sprintf("dev_%d_%d_%d", seed, a, rng.IntN(3))}
			if rng.IntN(15) == 0 {
				p.DeviceID = fmt.Sprintf("dev_shared_%d", rng.IntN(accounts/4+1)) // one device, several accounts
			}
			if rng.IntN(12) == 0 {
				p.Amount = 300000
			}
			if rng.IntN(40) == 0 {
				p.Amount = 600000
			}
			if rng.IntN(40) == 0 {
				p.MerchantID = "m_bad"
			}
			if rng.IntN(30) == 0 {
				p.DeviceID = "dev_trusted"
			}
			switch rng.IntN(16) {
			case 0:
				p.Country = ""
			case 1, 2:
				p.Country = []string{"FR", "US", "PL"}[rng.IntN(3)]
			}
			out = append(out, p)
			if rng.IntN(50) == 0 {
				out = append(out, p) // a producer's retry
			}
		}
	}
	return out
}

// Key identifies a payment in Outcomes.
func Key(accountID, paymentID string) string { return accountID + "/" + paymentID }

// Describe renders an outcome as Outcomes does: "no alert", or the action and the fired rules, sorted.
func Describe(a rules.Action, fired []string) string {
	if a == rules.ActionNone {
		return "no alert"
	}
	fired = slices.Clone(fired)
	slices.Sort(fired)
	return fmt.Sprintf("%s [%s]", a, strings.Join(fired, ", "))
}

// DescribeDecision renders a decision as Describe does.
func DescribeDecision(d rules.Decision) string { return DescribeFired(d.Action, d.Fired) }

// DescribeFired renders an action and the rules that fired (a decision's, an alert's) as Describe does.
func DescribeFired(a rules.Action, fired []rules.Fired) string {
	names := make([]string, 0, len(fired))
	for _, f := range fired {
		names = append(names, f.Name)
	}
	return Describe(a, names)
}

// Outcomes computes every payment's outcome under Rules from the definition, by Key. A payment id repeated
// within an account is one payment.
func Outcomes(payments []rules.Payment) map[string]string {
	uniq := map[string]rules.Payment{}
	for _, p := range payments {
		if _, dup := uniq[Key(p.AccountID, p.ID)]; !dup {
			uniq[Key(p.AccountID, p.ID)] = p
		}
	}
	byAccount, byDevice := map[string][]rules.Payment{}, map[string][]rules.Payment{}
	for _, p := range uniq {
		byAccount[p.AccountID] = append(byAccount[p.AccountID], p)
		if p.DeviceID != "" {
			byDevice[p.DeviceID] = append(byDevice[p.DeviceID], p)
		}
	}
	out := map[string]string{}
	for k, p := range uniq {
		t := p.Timestamp
		in := func(q rules.Payment, w time.Duration) bool {
			return q.Timestamp.After(t.Add(-w)) && !q.Timestamp.After(t)
		}
		var count, sum int
		countries := map[string]bool{}
		for _, q := range byAccount[p.AccountID] {
			if in(q, 5*time.Minute) {
				count++
			}
			if in(q, time.Hour) {
				sum += int(q.Amount)
			}
			if in(q, 30*time.Minute) && q.Country != "" {
				countries[q.Country] = true
			}
		}
		onDevice := 0
		for _, q := range byDevice[p.DeviceID] {
			if in(q, 10*time.Minute) {
				onDevice++
			}
		}
		score, fired := 0, []string{}
		fire := func(name string, s int, ok bool) {
			if ok {
				fired = append(fired, name)
				score += s
			}
		}
		fire("big-ticket", 60, p.Amount > 500000)
		fire("rapid-fire", 50, count > 4)
		fire("spend-surge", 50, sum > 1000000)
		fire("globetrotter", 80, len(countries) > 2)
		fire("blocked-merchant", 90, p.MerchantID == "m_bad")
		fire("shared-device", 50, onDevice > 3)
		score = min(score, 100)
		action := rules.ActionNone
		switch {
		case score >= 80:
			action = rules.ActionBlock
		case score >= 50:
			action = rules.ActionReview
		}
		if p.DeviceID == "dev_trusted" {
			action = rules.ActionNone
		}
		out[k] = Describe(action, fired)
	}
	return out
}

// Diff lists the payments whose outcome in got differs from want, sorted; a payment missing from got counts as
// "no alert".
func Diff(want, got map[string]string) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			g = "no alert"
		}
		if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: want %s, got %s", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: not in the stream, got %s", k, g))
		}
	}
	slices.Sort(diffs)
	return diffs
}
