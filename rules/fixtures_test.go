package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestFixturesReportWhatDiffers(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }
  - { name: huge, type: amount, limit: 100000, currency: EUR, score: 40 }
`)
	path := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(path, []byte(`
cases:
  - name: wrong expectations
    payments:
      - { id: p1, account_id: a, amount: 5000, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
      - { id: p2, account_id: a, amount: 500000, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
      - { id: p3, account_id: a, amount: 10, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
      - { id: p4, account_id: a, amount: -1, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
    alerts:
      - { payment: p2, action: review, rules: [big] }
      - { payment: p3, action: review, rules: [big] }
      - { payment: p9, action: review, rules: [big] }
  - name: right
    payments:
      - { id: p1, account_id: a, amount: 5000, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
    alerts:
      - { payment: p1, action: review, rules: [big] }
`), 0o644)
	f, err := LoadFixtures(path)
	if err != nil {
		t.Fatal(err)
	}
	got := RunFixtures(rs, f)
	want := []CaseResult{
		{Name: "wrong expectations", Diff: []string{
			`payment #4 is invalid: invalid payment (bad_amount): field "amount": -1 is outside 1..1000000000000000`,
			"payment p1: want no alert, got review [big]",
			"payment p2: want review [big], got block [big, huge]",
			"payment p3: want review [big], got no alert",
			"alert for payment p9: no such payment in the case",
		}},
		{Name: "right"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestBacktestComparesCandidateWithLive(t *testing.T) {
	live := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }
`)
	cand := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 3000, currency: EUR, score: 60 }
  - { name: burst, type: count, window: 1m, limit: 1, score: 50 }
`)
	bt := NewBacktest(live, cand, Env{})
	for _, p := range []Payment{
		pay("p1", 0, 2000, "EUR"),              // live: big; candidate: nothing
		pay("p2", 10*time.Second, 5000, "EUR"), // both: big; candidate also burst → block
		pay("p2", 10*time.Second, 5000, "EUR"), // retry
		{ID: "p3", AccountID: "acct_2", Amount: 10, Currency: "EUR", Timestamp: t0},
	} {
		bt.Add(p)
	}
	r := bt.Report()
	if r.Payments != 4 || r.Duplicates != 1 || r.LiveAlerts != 2 || r.CandidateAlerts != 1 {
		t.Fatalf("counts %+v", r)
	}
	if len(r.StopAlerting) != 1 || r.StopAlerting[0].PaymentID != "p1" || len(r.Changed) != 1 ||
		r.Changed[0].Candidate != "block [big, burst]" || len(r.NewlyAlerting) != 0 {
		t.Fatalf("diffs %+v", r)
	}
	want := []RuleStats{
		{Rule: "big", LiveAlerts: 2, CandidateAlerts: 1, LiveAccounts: 1, CandidateAccounts: 1},
		{Rule: "burst", CandidateAlerts: 1, CandidateAccounts: 1},
	}
	if !reflect.DeepEqual(r.Rules, want) {
		t.Fatalf("rules %+v", r.Rules)
	}
}
