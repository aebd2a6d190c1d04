package rules_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/reference"
	. "github.com/fraudpipe/fraudpipe/rules"
)

var t0 = reference.Start

func mustParse(t *testing.T, src string) *Ruleset {
	t.Helper()
	rs, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return rs
}

// The event-time contract: a payment's outcome depends on the payments of its account stamped in its windows,
// never on the order they arrived in. These tests score one stream in many arrival orders and compare every
// payment's newest outcome (its own decision, or the latest re-score a late arrival raised) with a reference
// written from the definition.

// scoreInOrder scores payments in the given order the way the detector does (one state per account and per
// grouping value, retries dropped) and returns every payment's newest outcome.
func scoreInOrder(t *testing.T, rs *Ruleset, payments []Payment) (map[string]string, int) {
	t.Helper()
	e := NewEngine(rs, Env{Lists: reference.Lists{}})
	newest := map[string]string{}
	late := 0
	for _, p := range payments {
		d, dup := e.Score(&p)
		if dup {
			continue
		}
		newest[reference.Key(p.AccountID, p.ID)] = reference.DescribeDecision(d)
		for _, l := range d.Late {
			late++
			if len(l.Changed) == 0 {
				t.Fatalf("late decision for %s names no changed rule", l.Payment.ID)
			}
			newest[reference.Key(l.Payment.AccountID, l.Payment.ID)] = reference.DescribeDecision(l.Decision)
		}
	}
	return newest, late
}

func TestOutcomesDoNotDependOnArrivalOrder(t *testing.T) {
	rs := mustParse(t, reference.Rules)
	stream := reference.Stream(1, 60)
	want := reference.Outcomes(stream)
	alerts := 0
	for _, w := range want {
		if w != "no alert" {
			alerts++
		}
	}
	t.Logf("%d payments, %d alert", len(want), alerts)
	if alerts < len(want)/20 || alerts > len(want)/2 {
		t.Fatalf("the stream alerts %d of %d payments: it does not exercise the rules", alerts, len(want))
	}
	orders := map[string]func([]Payment, *rand.Rand){
		"by event time": func(ps []Payment, _ *rand.Rand) {
			slices.SortStableFunc(ps, func(a, b Payment) int { return a.Timestamp.Compare(b.Timestamp) })
		},
		"reversed": func(ps []Payment, _ *rand.Rand) {
			slices.SortStableFunc(ps, func(a, b Payment) int { return b.Timestamp.Compare(a.Timestamp) })
		},
		"shuffled": func(ps []Payment, rng *rand.Rand) {
			rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		},
		// Mostly in order, some payments delayed by up to an hour (offline terminals, batch gateways).
		"some late": func(ps []Payment, rng *rand.Rand) {
			key := make(map[*Payment]time.Time, len(ps))
			for i := range ps {
				key[&ps[i]] = ps[i].Timestamp
				if rng.IntN(10) == 0 {
					key[&ps[i]] = ps[i].Timestamp.Add(time.Duration(rng.IntN(3600)) * time.Second)
				}
			}
			arrival := make([]time.Time, len(ps))
			for i := range ps {
				arrival[i] = key[&ps[i]]
			}
			idx := make([]int, len(ps))
			for i := range idx {
				idx[i] = i
			}
			slices.SortStableFunc(idx, func(a, b int) int { return arrival[a].Compare(arrival[b]) })
			sorted := make([]Payment, len(ps))
			for i, j := range idx {
				sorted[i] = ps[j]
			}
			copy(ps, sorted)
		},
	}
	for name, order := range orders {
		for seed := range uint64(5) {
			ps := slices.Clone(stream)
			order(ps, rand.New(rand.NewPCG(seed, 99)))
			got, late := scoreInOrder(t, rs, ps)
			if d := reference.Diff(want, got); len(d) > 0 {
				t.Fatalf("%s (seed %d): %d of %d payments differ from the reference, e.g.\n%s", name, seed, len(d), len(want), strings.Join(d[:min(len(d), 10)], "\n"))
			}
			if name == "shuffled" && late == 0 {
				t.Fatalf("%s: no payment was re-scored; the test does not exercise late arrivals", name)
			}
			if name != "by event time" {
				continue
			}
			break // one in-order run is enough
		}
	}
}

// A late alert carries the payment as it was submitted, so that the notifier can tell the customer which one.
func TestLateDecisionCarriesThePayment(t *testing.T) {
	rs := mustParse(t, reference.Rules)
	st := &State{}
	lat, lon := 48.1, 11.6
	first := Payment{ID: "p1", AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(4 * time.Minute),
		MerchantID: "m_1", MerchantCategory: "5732", Country: "DE", CardID: "card_1", DeviceID: "dev_1", IP: "10.0.0.1", Lat: &lat, Lon: &lon}
	rs.Evaluate(st, &first)
	var last Decision
	for i := range 4 {
		p := Payment{ID: fmt.Sprint("late", i), AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(time.Duration(i) * time.Minute)}
		last = rs.Evaluate(st, &p)
	}
	if len(last.Late) != 1 {
		t.Fatalf("the fifth payment re-scored %d payments, want the one stamped after it: %+v", len(last.Late), last.Late)
	}
	l := last.Late[0]
	want := first
	want.Timestamp = first.Timestamp.UTC()
	if l.Payment.Lat == nil || *l.Payment.Lat != lat || *l.Payment.Lon != lon {
		t.Fatalf("late decision's payment lost its location: %+v", l.Payment)
	}
	want.Lat, want.Lon = l.Payment.Lat, l.Payment.Lon
	if fmt.Sprint(l.Payment) != fmt.Sprint(want) || l.Decision.Action != ActionReview ||
		!slices.Equal(l.Changed, []string{"rapid-fire"}) {
		t.Fatalf("late decision %+v\nwant payment %+v, review by rapid-fire", l, want)
	}
	// The same outcome again is no news: a payment that changes nothing re-scores nothing.
	p := Payment{ID: "again", AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(5 * time.Minute)}
	if d := rs.Evaluate(st, &p); len(d.Late) != 0 {
		t.Fatalf("a payment after every other re-scored %+v", d.Late)
	}
}

// A payment later than the allowed lateness is scored over what the state still holds and re-scores nothing;
// the caller counts it.
func TestPaymentBeyondLatenessIsFlagged(t *testing.T) {
	rs := mustParse(t, strings.Replace(reference.Rules, "lateness: 24h", "lateness: 30m", 1))
	if rs.Lateness != 30*time.Minute || rs.Retention != 90*time.Minute {
		t.Fatalf("lateness %s, retention %s; want 30m and the longest window plus it, 1h30m", rs.Lateness, rs.Retention)
	}
	st := &State{}
	for i := range 5 {
		p := Payment{ID: fmt.Sprint(i), AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(time.Hour + time.Duration(i)*time.Second)}
		rs.Evaluate(st, &p)
	}
	within := Payment{ID: "within", AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(40 * time.Minute)}
	if d := rs.Evaluate(st, &within); d.BeyondLateness {
		t.Fatal("a payment 20m late, within 30m, was flagged")
	}
	beyond := Payment{ID: "beyond", AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(time.Hour - 5*time.Second - 30*time.Minute)}
	if d := rs.Evaluate(st, &beyond); !d.BeyondLateness || len(d.Late) != 0 {
		t.Fatalf("a payment 30m late: %+v; want flagged beyond lateness, nothing re-scored", d)
	}
}

// Cooldowns follow event time: a rule is quiet for the payments stamped within its cooldown after an alert, and
// a late payment stamped before that alert is not quieted by it.
func TestCooldownFollowsEventTime(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: big, type: amount, limit: 100, score: 60, cooldown: 10m }
`)
	st := &State{}
	alerted := func(id string, at time.Duration) bool {
		p := Payment{ID: id, AccountID: "a", Amount: 1000, Currency: "EUR", Timestamp: t0.Add(at)}
		return rs.Evaluate(st, &p).Action != ActionNone
	}
	if !alerted("first", 20*time.Minute) {
		t.Fatal("the first big payment did not alert")
	}
	if alerted("within", 25*time.Minute) {
		t.Fatal("a big payment 5m after an alert alerted within the 10m cooldown")
	}
	if !alerted("before", 15*time.Minute) {
		t.Fatal("a late big payment stamped before the alert was quieted by it")
	}
	if alerted("after-late", 17*time.Minute) {
		t.Fatal("a payment 2m after the late alert alerted within its cooldown")
	}
	if !alerted("after", 31*time.Minute) {
		t.Fatal("a big payment after the cooldown did not alert")
	}
}
