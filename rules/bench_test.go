package rules

import (
	"fmt"
	"testing"
	"time"
)

// benchState returns the shipped ruleset and an account state holding n recent payments.
func benchState(b *testing.B, n int) (*Ruleset, *State, []Payment) {
	b.Helper()
	rs, err := LoadFile("../examples/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
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
	rs, st, ps := benchState(b, 200)
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

func BenchmarkParsePayment(b *testing.B) {
	raw := []byte(`{"id":"pay_123","account_id":"acct_42","amount":125050,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","merchant_id":"m_17","merchant_category":"5732","country":"DE","card_id":"card_9","device_id":"dev_3","ip":"203.0.113.9"}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParsePayment(raw); err != nil {
			b.Fatal(err)
		}
	}
}
