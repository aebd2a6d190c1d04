package rules_test

import (
	"slices"
	"testing"
	"time"

	. "github.com/fraudpipe/fraudpipe/rules"
)

// How each kind of rule meets a late payment (docs/rules.md, "Late payments"): window rules and expressions over
// window aggregates are re-scored; travel, deviation and expressions that read the profile keep the outcome
// their payment got when it arrived, and take the previous payment by event time where they compare with it.

func at(id string, minutes float64) Payment {
	return Payment{ID: id, AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: t0.Add(time.Duration(minutes * float64(time.Minute)))}
}

func TestWindowExpressionIsRescoredByALatePayment(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: busy-hour, type: expression, expr: "account.count_1h >= 3", score: 60 }
`)
	st := &State{}
	for _, p := range []Payment{at("p1", 1), at("p2", 2), at("p4", 4)} {
		if d := rs.Evaluate(st, &p); d.Action != ActionNone {
			t.Fatalf("%s alerted with two payments before it", p.ID)
		}
	}
	late := at("p3", 3)
	d := rs.Evaluate(st, &late)
	if len(d.Late) != 1 || d.Late[0].Payment.ID != "p4" || !slices.Equal(d.Late[0].Changed, []string{"busy-hour"}) {
		t.Fatalf("the late p3 re-scored %+v; want p4, which now has three payments in the hour before it", d.Late)
	}
}

func TestProfileExpressionKeepsItsFirstOutcome(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: quick-repeat, type: expression, expr: "account.seconds_since_last >= 0 && account.seconds_since_last < 90", score: 60 }
`)
	st := &State{}
	for _, p := range []Payment{at("p1", 0), at("p3", 10)} {
		rs.Evaluate(st, &p)
	}
	late := at("p2", 9)
	if d := rs.Evaluate(st, &late); len(d.Late) != 0 {
		t.Fatalf("a late payment re-scored a profile expression: %+v", d.Late)
	}
}

func located(id string, minutes float64, lat, lon float64) Payment {
	p := at(id, minutes)
	p.Lat, p.Lon = &lat, &lon
	return p
}

func TestTravelComparesWithThePreviousPaymentByEventTime(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: far, type: travel, max_speed_kmh: 900, score: 60 }
`)
	const berlinLat, berlinLon, nyLat, nyLon = 52.52, 13.40, 40.71, -74.0
	st := &State{}
	for _, p := range []Payment{located("berlin", 0, berlinLat, berlinLon), located("new-york", 8*60, nyLat, nyLon)} {
		if d := rs.Evaluate(st, &p); d.Action != ActionNone {
			t.Fatalf("%s alerted: 6,400 km in 8 hours is 800 km/h", p.ID)
		}
	}
	// Stamped an hour before New York, arrived after it: its previous payment is Berlin's, not New York's.
	late := located("berlin-again", 7*60, berlinLat, berlinLon)
	d := rs.Evaluate(st, &late)
	if d.Action != ActionNone {
		t.Fatalf("the late Berlin payment was compared with the later New York one: %+v", d.Fired)
	}
	// New York keeps its first outcome: travel is not re-scored (its previous payment changed to one an hour
	// before it, 6,400 km away, but alerts are raised on arrival only for travel).
	if len(d.Late) != 0 {
		t.Fatalf("travel was re-scored: %+v", d.Late)
	}
}

func TestDeviationKeepsItsFirstOutcome(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: unusual, type: deviation, factor: 3, min_payments: 3, score: 60 }
`)
	st := &State{}
	for i, amount := range []int64{100, 110, 90, 105, 120} {
		p := at(string(rune('a'+i)), float64(i))
		p.Amount = amount
		if d := rs.Evaluate(st, &p); d.Action != ActionNone {
			t.Fatalf("payment %d alerted", i)
		}
	}
	late := at("late", 0.5)
	late.Amount = 10
	if d := rs.Evaluate(st, &late); len(d.Late) != 0 {
		t.Fatalf("a late payment re-scored deviation: %+v", d.Late)
	}
}
