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
				Partitions: 1, Now: func() time.Time { return now }})
			for _, p := range ps {
				b, _ := json.Marshal(p)
				key := []string{p.AccountID, p.ID, ""}[rng.IntN(3)]
				f.tt.Consume(string(topics.Payments), key, b, tester.WithTime(t0))
			}
			got := map[string]string{}
			late := 0
			for {
				_, v, ok := f.alerts.Next()
				if !ok {
					break
				}
				a := v.(*topics.Alert)
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
		})
	}
}

func shuffle(ps []rules.Payment, rng *rand.Rand) {
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
}
