package rules

import (
	"fmt"
	"testing"
	"time"
)

// coreRules are the four windowed and amount rules of the shipped file without the list, profile and
// expression rules: the common case, which must not allocate.
const coreRules = `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR, rates: { USD: 0.92, GBP: 1.17 } }
state: { retention: 1h, max_events: 256 }
rules:
  - { name: big-ticket, type: amount, limit: 500000, score: 60 }
  - { name: rapid-fire, type: count, window: 5m, limit: 4, score: 50 }
  - { name: spend-surge, type: sum, window: 1h, limit: 1000000, score: 50 }
  - { name: globetrotter, type: distinct, field: country, window: 30m, limit: 2, score: 80 }
`

// benchState returns the core ruleset and an account state holding n recent payments.
func benchState(b *testing.B, n int) (*Ruleset, *State, []Payment) {
	b.Helper()
	rs, err := Parse("core.yaml", []byte(coreRules))
	if err != nil {
		b.Fatal(err)
	}
	return benchStateWith(b, rs, n)
}

func benchStateWith(b *testing.B, rs *Ruleset, n int) (*Ruleset, *State, []Payment) {
	st := &State{}
	ps := make([]Payment, 4096)
	for i := range ps {
		ps[i] = Payment{ID: fmt.Sprint("p", i), AccountID: "acct_1", Amount: 2500, Currency: "EUR",
			Timestamp: t0.Add(time.Duration(i) * 100 * time.Second), Country: "DE", MerchantID: fmt.Sprint("m_", i%7),
			MerchantCategory: "5411", CardID: "card_1", DeviceID: "dev_1", IP: "198.51.100.7"}
	}
	for i := range n {
		p := ps[i%len(ps)]
		rs.Evaluate(st, &p)
	}
	return rs, st, ps
}

// BenchmarkEvaluate is the per-payment cost of rule evaluation and the window update, in steady state.
func BenchmarkEvaluate(b *testing.B) {
	rs, err := Parse("core.yaml", []byte(coreRules))
	if err != nil {
		b.Fatal(err)
	}
	benchEvaluate(b, rs)
}

// BenchmarkEvaluateShipped is the same with every rule of examples/rules.yaml.
func BenchmarkEvaluateShipped(b *testing.B) {
	shipped, err := LoadFile("../examples/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	benchEvaluate(b, shipped)
}

// BenchmarkEvaluateExpression adds one CEL expression rule to the core rules: what an expression costs.
func BenchmarkEvaluateExpression(b *testing.B) {
	rs, err := Parse("expr.yaml", []byte(coreRules+`  - name: foreign-spike
    type: expression
    expr: account.payments >= 5 && payment.amount > 3 * account.mean_amount && payment.country != account.home_country
    score: 40
    mode: shadow
`))
	if err != nil {
		b.Fatal(err)
	}
	benchEvaluate(b, rs)
}

func benchEvaluate(b *testing.B, rs *Ruleset) {
	rs, st, ps := benchStateWith(b, rs, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &ps[(200+i)%len(ps)]
		p.Timestamp = t0.Add(time.Duration(200+i) * 100 * time.Second)
		rs.Evaluate(st, p)
	}
}

func BenchmarkStateMarshal(b *testing.B) {
	_, st, _ := benchState(b, 200)
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		enc, _ := st.MarshalBinary()
		n = len(enc)
	}
	b.ReportMetric(float64(n), "state-bytes")
}

func BenchmarkStateUnmarshal(b *testing.B) {
	_, st, _ := benchState(b, 200)
	enc, _ := st.MarshalBinary()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var s State
		if err := s.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePayment decodes payments that differ in their ids, account, amount and time, as a stream does:
// the same payment over and over would hit JSON v2's cache of recent strings every time.
func BenchmarkParsePayment(b *testing.B) {
	raws := make([][]byte, 1024)
	for i := range raws {
		raws[i] = fmt.Appendf(nil, `{"id":"pay_%09d","account_id":"acct_%07d","amount":%d,"currency":"EUR","timestamp":"2026-11-22T10:%02d:%02d.%06dZ","merchant_id":"m_%d","merchant_category":"5732","country":"DE","card_id":"card_%07d","device_id":"dev_%07d","ip":"203.0.113.%d"}`,
			i, i*7919%1000003, 100+i*37, i/60%60, i%60, i*4561%1000000, i%97, i*7919%1000003, i*7919%1000003, i%250)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParsePayment(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
	}
}
