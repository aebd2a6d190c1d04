package producer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

func TestGeneratedStreamIsValidDeterministicAndAlertsOnItsPatterns(t *testing.T) {
	rs, err := rules.LoadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	g, again := NewGenerator(3, 5000, 0.01, start, time.Hour), NewGenerator(3, 5000, 0.01, start, time.Hour)
	states := map[string]*rules.State{}
	fired := map[string]int{}
	alerts, n := 0, 50000
	last := start
	for range n {
		p := g.Next()
		if q := again.Next(); q != p {
			t.Fatalf("same seed, different stream: %+v vs %+v", p, q)
		}
		if _, err := rules.ParsePayment(Encode(p)); err != nil {
			t.Fatalf("generated payment is invalid: %v", err)
		}
		if p.Timestamp.Before(last) {
			t.Fatalf("event time goes backwards: %s after %s", p.Timestamp, last)
		}
		last = p.Timestamp
		if states[p.AccountID] == nil {
			states[p.AccountID] = new(rules.State)
		}
		d := rs.Evaluate(states[p.AccountID], &p)
		if d.Action != rules.ActionNone {
			alerts++
		}
		for _, f := range append(d.Fired, d.Shadow...) {
			fired[f.Name]++
		}
	}
	share := float64(alerts) / float64(n)
	if share < 0.005 || share > 0.04 {
		t.Fatalf("%.2f%% of payments alert; a realistic stream with 1%% fraud patterns should alert around 1-3%%", share*100)
	}
	for _, r := range rs.Rules {
		// List rules fire on the values in the lists, which the generator leaves to the user.
		if fired[r.Name] == 0 && r.Type != rules.TypeList {
			t.Errorf("no generated pattern fires %s", r.Name)
		}
	}
	if len(states) < 4000 {
		t.Fatalf("only %d of 5000 accounts paid", len(states))
	}
}

func TestGeneratedCustomersMatchTheAccounts(t *testing.T) {
	g := NewGenerator(1, 50, 0.01, time.Now(), time.Hour)
	cs := g.Customers()
	if len(cs) != 50 {
		t.Fatalf("%d customers for 50 accounts", len(cs))
	}
	for i, c := range cs {
		b, _ := json.Marshal(c)
		parsed, err := topics.ParseCustomer(b)
		if err != nil || parsed.AccountID != AccountID(i) || parsed.Email == "" || parsed.Phone == "" {
			t.Fatalf("customer %d: %+v %v", i, parsed, err)
		}
	}
}

// The generator builds its ids without fmt for speed; they must read as the documented formats.
func TestGeneratedIDsFollowTheirFormats(t *testing.T) {
	g := NewGenerator(1, 1_234_567, 0, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Hour)
	g.IDPrefix = "sat_"
	for _, i := range []int{0, 7, 249, 250, 62_499, 62_500, 999_999, 1_000_000, 1_234_566} {
		a := g.person(i)
		want := [4]string{fmt.Sprintf("acct_%06d", i), fmt.Sprintf("card_%06d", i), fmt.Sprintf("dev_%06d", i),
			fmt.Sprintf("198.51.%d.%d", i/250%250, i%250+1)}
		if got := [4]string{a.id, a.card, a.device, a.ip}; got != want {
			t.Errorf("account %d: %q, want %q", i, got, want)
		}
		if AccountID(i) != want[0] {
			t.Errorf("AccountID(%d) = %q, want %q", i, AccountID(i), want[0])
		}
	}
	for n := 1; n <= 3; n++ {
		if p, want := g.Next(), fmt.Sprintf("sat_pay_%09d", n); p.ID != want {
			t.Errorf("payment %d has id %q, want %q", n, p.ID, want)
		}
	}
	g.seq = 1_234_567_890
	if p := g.Next(); p.ID != "sat_pay_1234567891" {
		t.Errorf("a tenth digit is not kept: %q", p.ID)
	}
}

// The generator's labels mark exactly the payments its fraud patterns made, recognised here by what each pattern
// does to a payment: six small payments of one account ten seconds apart (card testing), the jewellery big ticket,
// and the payments from the documentation range of addresses abroad (country hopping).
func TestGeneratedLabelsMarkExactlyThePatternsPayments(t *testing.T) {
	g := NewGenerator(5, 3000, 0.02, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Hour)
	type key struct {
		account string
		at      time.Time
	}
	labelled := map[string]bool{} // payment id: fraud
	small := map[key]string{}     // small payments by account and time: id
	var pays []rules.Payment
	for range 40000 {
		p, fraud := g.NextLabelled()
		l := Label(p, fraud)
		if l.AccountID != p.AccountID || l.PaymentID != p.ID || l.Source != "generator" || !l.At.Equal(p.Timestamp) ||
			(l.Verdict == topics.VerdictFraud) != fraud || (!fraud && l.Verdict != topics.VerdictLegitimate) {
			t.Fatalf("label %+v of %+v (fraud %v)", l, p, fraud)
		}
		labelled[p.ID] = fraud
		pays = append(pays, p)
		if p.Amount >= 100 && p.Amount < 500 {
			small[key{p.AccountID, p.Timestamp}] = p.ID
		}
	}
	made := map[string]string{} // payment id: the pattern that made it
	for _, p := range pays {
		switch {
		case p.MerchantCategory == "5944":
			made[p.ID] = "big-ticket"
		case strings.HasPrefix(p.IP, "203.0.113."):
			made[p.ID] = "country-hopping"
		}
		burst := []string{}
		for i := range 6 {
			if id, ok := small[key{p.AccountID, p.Timestamp.Add(time.Duration(i) * 10 * time.Second)}]; ok {
				burst = append(burst, id)
			}
		}
		if len(burst) == 6 {
			for _, id := range burst {
				made[id] = "burst"
			}
		}
	}
	for _, p := range pays {
		if labelled[p.ID] != (made[p.ID] != "") {
			t.Errorf("payment %s (%s, %d %s, mcc %s, ip %s) labelled fraud %v, made by pattern %q",
				p.ID, p.AccountID, p.Amount, p.Currency, p.MerchantCategory, p.IP, labelled[p.ID], made[p.ID])
		}
	}
	fraud := 0
	for _, f := range labelled {
		if f {
			fraud++
		}
	}
	// Every pattern started is labelled in full, but for the payments still scheduled when the stream stops.
	if want := 6*g.Patterns["burst"] + g.Patterns["big-ticket"] + 2*g.Patterns["country-hopping"]; fraud+len(g.pending) != want || fraud < 500 {
		t.Fatalf("%d fraud labels and %d scheduled, want %d from patterns %v", fraud, len(g.pending), want, g.Patterns)
	}
}
