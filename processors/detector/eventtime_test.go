package detector_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"

	"github.com/fraudpipe/fraudpipe/internal/reference"
	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// The detector's alerts are a function of the payments, not of how they were keyed or in which order they
// arrived: the same stream, keyed by account, by payment id or not at all, and fed in many orders, leaves the
// same newest alert per payment on the alerts topic, equal to the reference computed from the definition.
func TestAlertsDoNotDependOnKeysOrArrivalOrder(t *testing.T) {
	rs, err := rules.Parse("reference.yaml", []byte(reference.Rules))
	if err != nil {
		t.Fatal(err)
	}
	stream := reference.Stream(2, 15)
	want := reference.Outcomes(stream)
	orders := map[string]func([]rules.Payment, *rand.Rand){
		"in order": func(ps []rules.Payment, _ *rand.Rand) {
			slices.SortStableFunc(ps, func(a, b rules.Payment) int { return a.Timestamp.Compare(b.Timestamp) })
		},
		"reversed": func(ps []rules.Payment, _ *rand.Rand) {
			slices.SortStableFunc(ps, func(a, b rules.Payment) int { return b.Timestamp.Compare(a.Timestamp) })
		},
		"shuffled 1": shuffle,
		"shuffled 2": shuffle,
		"shuffled 3": shuffle,
	}
	seed := uint64(0)
	for name, order := range orders {
		seed++
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			ps := slices.Clone(stream)
			order(ps, rng)
			f := runDetector(t, detector.Config{Rules: func() *rules.Ruleset { return rs }, Lists: reference.Lists{},
				Partitions: 1, Now: func() time.Time { return now }, Decisions: true})
			decisions := f.tt.NewQueueTracker(topics.Decisions)
			for _, p := range ps {
				b, _ := json.Marshal(p)
				key := []string{p.AccountID, p.ID, ""}[rng.IntN(3)]
				f.tt.Consume(string(topics.Payments), key, b, tester.WithTime(t0))
			}
			got := map[string]string{}
			late := 0
			for _, a := range f.drainAlerts() {
				got[reference.Key(a.AccountID, a.PaymentID)] = reference.DescribeFired(a.Action, a.Rules)
				if a.Late {
					late++
					if a.RaisedBy == "" || len(a.ChangedRules) == 0 || a.Payment.ID != a.PaymentID || a.ID != topics.AlertID(a.AccountID, a.PaymentID) {
						t.Fatalf("late alert %+v lacks what raised it or its payment", a)
					}
				}
			}
			if d := reference.Diff(want, got); len(d) > 0 {
				t.Fatalf("%d of %d payments' newest alert differs from the reference, e.g.\n%s", len(d), len(want), strings.Join(d[:min(len(d), 10)], "\n"))
			}
			if name != "in order" && late == 0 {
				t.Fatal("no late alert: the order does not exercise late arrivals")
			}
			// The newest decision per payment is its outcome too, whatever the order: a late escalation comes as a
			// late decision as well as a late alert.
			gotD, decided := map[string]string{}, map[string]bool{}
			for {
				_, v, ok := decisions.Next()
				if !ok {
					break
				}
				d := v.(*topics.Decision)
				k := reference.Key(d.AccountID, d.PaymentID)
				decided[k] = true
				if d.Replayed {
					// A producer's retry: the outcome the payment has now (its rules may no longer be kept).
					if prev, ok := gotD[k]; ok != (d.Decision != topics.OutcomeApprove) || ok && !strings.HasPrefix(prev, string(d.Decision)) {
						t.Fatalf("replayed decision %+v, the payment's newest was %q", d, prev)
					}
					continue
				}
				if d.Decision == topics.OutcomeApprove {
					delete(gotD, k)
				} else {
					gotD[k] = reference.DescribeFired(rules.Action(d.Decision), d.Rules)
				}
			}
			distinct := map[string]bool{}
			for _, p := range stream { // producers' retries included
				distinct[reference.Key(p.AccountID, p.ID)] = true
			}
			if len(decided) != len(distinct) {
				t.Fatalf("%d payments decided, want all %d", len(decided), len(distinct))
			}
			if d := reference.Diff(want, gotD); len(d) > 0 {
				t.Fatalf("%d of %d payments' newest decision differs from the reference, e.g.\n%s", len(d), len(want), strings.Join(d[:min(len(d), 10)], "\n"))
			}
		})
	}
}

func shuffle(ps []rules.Payment, rng *rand.Rand) {
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
}

// A late payment that shares two grouping values with an earlier-scored one re-scores it through both, and both
// re-scores count: they are told apart by the grouping value they come through.
func TestLatePaymentRescoresThroughEveryGroupingValue(t *testing.T) {
	rs, err := rules.Parse("g.yaml", []byte(`
thresholds: { review: 50, block: 80 }
rules:
  - { name: dev-shared, type: count, by: device_id, window: 10m, limit: 1, score: 50 }
  - { name: ip-shared, type: count, by: ip, window: 10m, limit: 1, score: 50 }
`))
	if err != nil {
		t.Fatal(err)
	}
	f := runDetector(t, detector.Config{Rules: func() *rules.Ruleset { return rs }, Partitions: 1, Now: func() time.Time { return now }})
	send := func(id, account string, at time.Duration) {
		b, _ := json.Marshal(rules.Payment{ID: id, AccountID: account, Amount: 100, Currency: "EUR", Timestamp: t0.Add(at),
			DeviceID: "dev_shared", IP: "198.51.100.1"})
		f.tt.Consume(string(topics.Payments), account, b, tester.WithTime(t0))
	}
	send("A", "acct_1", 6*time.Minute)
	send("C", "acct_2", 5*time.Minute) // late: stamped before A, on the same device and IP
	var last *topics.Alert
	for {
		_, v, ok := f.alerts.Next()
		if !ok {
			break
		}
		if a := v.(*topics.Alert); a.PaymentID == "A" {
			last = a
		}
	}
	if last == nil || last.Action != rules.ActionBlock || len(last.Rules) != 2 || !last.Late {
		t.Fatalf("A's newest alert %+v; want a late block by both grouped rules", last)
	}
}
