package rules_test

import (
	"slices"
	"testing"
	"time"

	. "github.com/fraudpipe/fraudpipe/rules"
)

// How each kind of rule meets a late payment (docs/rules.md, "Event time and late payments"): every rule is
// defined by event time, and a late payment re-scores the payments whose windows or profile it enters.

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

func TestProfileExpressionIsRescoredByEventTime(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: quick-repeat, type: expression, expr: "account.seconds_since_last >= 0 && account.seconds_since_last < 90", score: 60 }
`)
	st := &State{}
	for _, p := range []Payment{at("p1", 0), at("p3", 10)} {
		p.Country = "DE"
		if d := rs.Evaluate(st, &p); d.Action != ActionNone {
			t.Fatalf("%s alerted", p.ID)
		}
	}
	late := at("p2", 9)
	late.Country = "DE"
	d := rs.Evaluate(st, &late)
	if d.Action != ActionNone {
		t.Fatal("p2 alerted: its previous payment, by event time, is p1, nine minutes before it")
	}
	if len(d.Late) != 1 || d.Late[0].Payment.ID != "p3" {
		t.Fatalf("the late p2 re-scored %+v; want p3, whose previous payment is now p2, a minute before it", d.Late)
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
	// Stamped half an hour before New York, arrived after it: its previous payment is Berlin's, not New York's.
	late := located("berlin-again", 7.5*60, berlinLat, berlinLon)
	d := rs.Evaluate(st, &late)
	if d.Action != ActionNone {
		t.Fatalf("the late Berlin payment was compared with the later New York one: %+v", d.Fired)
	}
	// New York's previous payment by event time is now the late one, half an hour before it and 6,400 km away.
	if len(d.Late) != 1 || d.Late[0].Payment.ID != "new-york" || !slices.Equal(d.Late[0].Changed, []string{"far"}) {
		t.Fatalf("the late Berlin payment re-scored %+v; want New York by travel", d.Late)
	}
}

func TestDeviationBaselineFollowsEventTime(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: unusual, type: deviation, factor: 3, min_payments: 5, score: 60 }
`)
	st := &State{}
	for i := range 4 {
		p := at(string(rune('a'+i)), float64(i))
		rs.Evaluate(st, &p)
	}
	big := at("big", 10)
	big.Amount = 200
	if d := rs.Evaluate(st, &big); d.Action != ActionNone {
		t.Fatal("a payment alerted against a baseline of four, below min_payments")
	}
	late := at("late", 5) // stamped before the big one: it joins the big one's baseline
	d := rs.Evaluate(st, &late)
	if len(d.Late) != 1 || d.Late[0].Payment.ID != "big" || d.Late[0].Decision.Action != ActionReview {
		t.Fatalf("the late payment re-scored %+v; want the big one, now 2x a baseline of five", d.Late)
	}
	// The same payments in order give the big one the same outcome at once.
	inOrder := &State{}
	for _, p := range []Payment{at("a", 0), at("b", 1), at("c", 2), at("d", 3), at("late", 5), big} {
		d = rs.Evaluate(inOrder, &p)
	}
	if d.Action != ActionReview {
		t.Fatalf("in order, the big payment got %+v", d)
	}
}

// A late payment re-scores only the payments the same ruleset version decided: a later version, or a list that
// changed since, never raises a late alert for a payment scored before it.
func TestLatePaymentsRescoreOnlyTheirOwnRulesetVersion(t *testing.T) {
	v1 := mustParse(t, "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: rapid, type: count, window: 5m, limit: 1, score: 60 }\n")
	v2 := mustParse(t, "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: rapid, type: count, window: 5m, limit: 0, score: 60 }\n")
	st := &State{}
	p1 := at("p1", 2)
	if d := v1.Evaluate(st, &p1); d.Action != ActionNone {
		t.Fatal("one payment alerted under v1")
	}
	late := at("p0", 1)
	if d := v2.Evaluate(st, &late); len(d.Late) != 0 {
		t.Fatalf("v2 re-scored a payment v1 decided: %+v", d.Late)
	}
	again := at("p0b", 1.5)
	if d := v1.Evaluate(st, &again); len(d.Late) != 1 || d.Late[0].Payment.ID != "p1" {
		t.Fatalf("v1 did not re-score its own payment: %+v", d.Late)
	}
}

// Every alert a payment's arrival raised is kept for its redelivery, however many: the newest remembered entry is
// never trimmed.
func TestManyLateAlertsAreKeptForRedelivery(t *testing.T) {
	st := &State{}
	big := make([]byte, 40<<10)
	st.Remember("late", 7, big)
	if src, stored, ok := st.Lookup("late"); !ok || src != 7 || len(stored) != len(big) {
		t.Fatalf("the newest entry kept %d of %d bytes", len(stored), len(big))
	}
	st.Remember("next", 8, []byte("x"))
	if _, stored, _ := st.Lookup("late"); stored != nil {
		t.Fatal("an older entry over the budget was kept")
	}
}
