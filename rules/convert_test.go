package rules

import (
	"errors"
	"strings"
	"testing"
)

const testRates = `
currency: EUR
rates:
  USD: 0.92
  GBP: "1.17"
  JPY: 0.0061
  KWD: 2.98
`

// Amounts in several currencies, each with its own minor unit, sum exactly in the reporting currency, rounded
// once at the end, half away from zero.
func TestFraudCaughtConvertsToOneCurrencyExactly(t *testing.T) {
	r, err := ParseRates([]byte(testRates))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		amounts map[string]int64
		want    int64
	}{
		{"the reporting currency as it is", map[string]int64{"EUR": 700050}, 700050},
		{"dollars at 0.92", map[string]int64{"USD": 1000}, 920},                                         // 10.00 USD = 9.20 EUR
		{"yen have no minor unit", map[string]int64{"JPY": 10000}, 6100},                                // 10,000 JPY = 61.00 EUR
		{"dinars have three decimals", map[string]int64{"KWD": 1500}, 447},                              // 1.500 KWD = 4.47 EUR
		{"half a cent rounds up", map[string]int64{"USD": 125}, 115},                                    // 1.25 USD = 1.15 EUR exactly
		{"rounded once, not per currency", map[string]int64{"USD": 1, "GBP": 1}, 2},                     // 0.0092 + 0.0117 = 0.0209 EUR
		{"everything together", map[string]int64{"EUR": 100, "USD": 1000, "GBP": 1000, "JPY": 1}, 2191}, // 1 + 9.2 + 11.7 + 0.0061
		{"nothing caught", map[string]int64{}, 0},
	} {
		got, err := r.Convert(c.amounts)
		if err != nil || got != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, got, err, c.want)
		}
	}
	_, err = r.Convert(map[string]int64{"EUR": 1, "CHF": 5, "SEK": 9})
	if !errors.Is(err, ErrNoRate) || !strings.Contains(err.Error(), "CHF, SEK") {
		t.Fatalf("currencies without a rate: %v", err)
	}
}

func TestRatesFilesAreChecked(t *testing.T) {
	for name, src := range map[string]string{
		"no reporting currency":        "rates: { USD: 0.92 }",
		"a lowercase code":             "currency: EUR\nrates: { usd: 0.92 }",
		"a rate that is no number":     "currency: EUR\nrates: { USD: lots }",
		"a zero rate":                  "currency: EUR\nrates: { USD: 0 }",
		"a negative rate":              "currency: EUR\nrates: { USD: -1 }",
		"the reporting currency not 1": "currency: EUR\nrates: { EUR: 1.1 }",
		"an unknown field":             "currency: EUR\nrate: { USD: 1 }",
		"a list for a rate":            "currency: EUR\nrates: { USD: [1] }",
	} {
		if _, err := ParseRates([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := ParseRates([]byte("currency: EUR\nrates: { EUR: 1.0, USD: 1/2 }"))
	if err != nil || r.Currency != "EUR" {
		t.Fatalf("%+v %v", r, err)
	}
}

// A quality report converted keeps its per-currency figures and adds the total to every ruleset and rule; with a
// currency lacking a rate it is refused and left as it was.
func TestAQualityReportIsConvertedWhole(t *testing.T) {
	r, _ := ParseRates([]byte(testRates))
	q := QualityReport{
		Live:      Quality{FraudCaught: map[string]int64{"EUR": 7000, "USD": 1000}},
		Candidate: Quality{},
		Rules:     []RuleQuality{{Rule: "big", Live: Quality{FraudCaught: map[string]int64{"JPY": 500}}}},
	}
	if err := q.Convert(r); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		q    Quality
		want int64
	}{"live": {q.Live, 7920}, "candidate": {q.Candidate, 0}, "big live": {q.Rules[0].Live, 305}, "big candidate": {q.Rules[0].Candidate, 0}} {
		if c.q.FraudCaughtIn == nil || *c.q.FraudCaughtIn != (Money{Amount: c.want, Currency: "EUR"}) {
			t.Errorf("%s: %+v, want %d EUR", name, c.q.FraudCaughtIn, c.want)
		}
	}
	if q.Live.FraudCaught["USD"] != 1000 || q.Live.FraudCaught["EUR"] != 7000 {
		t.Fatalf("per-currency figures changed: %v", q.Live.FraudCaught)
	}
	bad := QualityReport{Live: Quality{FraudCaught: map[string]int64{"EUR": 1}}, Rules: []RuleQuality{{Rule: "x", Candidate: Quality{FraudCaught: map[string]int64{"CHF": 1}}}}}
	if err := bad.Convert(r); !errors.Is(err, ErrNoRate) || !strings.Contains(err.Error(), "CHF") {
		t.Fatalf("a currency without a rate: %v", err)
	}
	if bad.Live.FraudCaughtIn != nil {
		t.Fatal("a refused conversion changed the report")
	}
}
