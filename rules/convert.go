package rules

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Rates convert amounts into one reporting currency, for a backtest's "fraud value caught" summed over
// currencies. Rates are exact decimals (big.Rat), never floats: a report of money must add up to the minor unit.
type Rates struct {
	// Currency is the reporting currency.
	Currency string
	// perUnit[X] is what one unit (not minor unit) of X is worth in Currency.
	perUnit map[string]*big.Rat
}

// ErrNoRate is a conversion that meets a currency the rates do not list.
var ErrNoRate = errors.New("no exchange rate")

// ParseRates reads a rates file:
//
//	currency: EUR      # the reporting currency
//	rates:             # what one unit of each currency is worth in it
//	  USD: 0.92
//	  GBP: "1.17"
//
// The reporting currency itself needs no line (its rate is 1).
func ParseRates(data []byte) (*Rates, error) {
	var f struct {
		Currency string               `yaml:"currency"`
		Rates    map[string]yaml.Node `yaml:"rates"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("rates: %w", err)
	}
	if !isCurrencyCode(f.Currency) {
		return nil, fmt.Errorf("rates: currency %q is not a three-letter code", f.Currency)
	}
	r := &Rates{Currency: f.Currency, perUnit: map[string]*big.Rat{f.Currency: big.NewRat(1, 1)}}
	for _, code := range slices.Sorted(maps.Keys(f.Rates)) {
		n := f.Rates[code]
		if !isCurrencyCode(code) {
			return nil, fmt.Errorf("rates: line %d: %q is not a three-letter currency code", n.Line, code)
		}
		// The scalar's text, not a float64 decoding of it: 0.1 stays exactly a tenth.
		v, ok := new(big.Rat).SetString(strings.TrimSpace(n.Value))
		if n.Kind != yaml.ScalarNode || !ok || v.Sign() <= 0 {
			return nil, fmt.Errorf("rates: line %d: %s: %q is not a positive decimal number", n.Line, code, n.Value)
		}
		if code == f.Currency && v.Cmp(big.NewRat(1, 1)) != 0 {
			return nil, fmt.Errorf("rates: line %d: %s is the reporting currency, its rate is 1, not %s", n.Line, code, n.Value)
		}
		r.perUnit[code] = v
	}
	return r, nil
}

func isCurrencyCode(s string) bool {
	return len(s) == 3 && strings.ToUpper(s) == s && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
}

// Convert sums amounts (minor units per currency) in the reporting currency's minor units, rounding the exact
// sum once, half away from zero. A currency without a rate is an error naming every such currency: a total that
// silently left one out would understate what was caught.
func (r *Rates) Convert(amounts map[string]int64) (int64, error) {
	sum := new(big.Rat)
	var missing []string
	for _, code := range slices.Sorted(maps.Keys(amounts)) {
		rate, ok := r.perUnit[code]
		if !ok {
			missing = append(missing, code)
			continue
		}
		// minor / 10^digits(code) units of code, each worth rate, in 10^digits(reporting) minor units.
		v := new(big.Rat).SetFrac(big.NewInt(amounts[code]), pow10(MinorDigits(code)))
		v.Mul(v, rate)
		sum.Add(sum, v)
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("%w to %s for %s", ErrNoRate, r.Currency, strings.Join(missing, ", "))
	}
	sum.Mul(sum, new(big.Rat).SetInt(pow10(MinorDigits(r.Currency))))
	return roundHalfAway(sum), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

func roundHalfAway(x *big.Rat) int64 {
	num, den := new(big.Int).Abs(x.Num()), x.Denom()
	// (2|num| + den) / 2den, truncated, is |x| rounded half up.
	q := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Lsh(num, 1), den), new(big.Int).Lsh(den, 1))
	if x.Sign() < 0 {
		q.Neg(q)
	}
	return q.Int64()
}

// Money is an amount in minor units of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Convert adds to every Quality of the report its fraud caught in the reporting currency, keeping the
// per-currency figures. It changes nothing and names the currencies without a rate if there are any.
func (q *QualityReport) Convert(r *Rates) error {
	all := []*Quality{&q.Live, &q.Candidate}
	for i := range q.Rules {
		all = append(all, &q.Rules[i].Live, &q.Rules[i].Candidate)
	}
	seen := map[string]int64{}
	for _, x := range all {
		for code := range x.FraudCaught {
			seen[code] = 0
		}
	}
	if _, err := r.Convert(seen); err != nil {
		return err
	}
	for _, x := range all {
		v, _ := r.Convert(x.FraudCaught) // every currency has a rate: checked above
		x.FraudCaughtIn = &Money{Amount: v, Currency: r.Currency}
	}
	return nil
}
