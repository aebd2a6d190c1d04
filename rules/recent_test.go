package rules

import (
	"testing"
	"time"
)

func TestRecentListsTheAccountsExactPaymentsNewestFirst(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: big-ticket, type: amount, limit: 500000, score: 60 }
`)
	st := &State{}
	ps := []Payment{pay("p1", 0, 100, "EUR"), pay("p2", time.Minute, 600000, "EUR"), pay("p3", 2*time.Minute, 200, "USD")}
	ps[0].Country, ps[2].MerchantID = "DE", "m_9"
	// Arrival out of order: p3 before p2. Recent goes by event time.
	for _, i := range []int{0, 2, 1} {
		rs.Evaluate(st, &ps[i])
	}
	got := st.Recent("acct_1", "p3", 10)
	if len(got) != 2 || got[0].ID != "p2" || got[1].ID != "p1" {
		t.Fatalf("recent %+v, want p2 then p1 (p3 left out)", got)
	}
	if p := got[0]; p.Amount != 600000 || p.Currency != "EUR" || p.Score != 60 || p.Action != ActionReview ||
		!p.Timestamp.Equal(t0.Add(time.Minute)) || p.AccountID != "acct_1" {
		t.Fatalf("p2 %+v", p)
	}
	if p := got[1]; p.Country != "DE" || p.Score != 0 || p.Action != ActionNone {
		t.Fatalf("p1 %+v", p)
	}
	if all := st.Recent("acct_1", "", 2); len(all) != 2 || all[0].ID != "p3" || all[0].MerchantID != "m_9" || all[0].Currency != "USD" {
		t.Fatalf("newest two %+v", all)
	}
}
