package rules

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, yml string) *Ruleset {
	t.Helper()
	rs, err := Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return rs
}

func pay(id string, at time.Duration, amount int64, cur string) Payment {
	return Payment{ID: id, AccountID: "acct_1", Amount: amount, Currency: cur, Timestamp: t0.Add(at)}
}

// firedNames evaluates payments in order and returns, for each, the names of the rules that fired.
func firedNames(rs *Ruleset, st *State, ps ...Payment) [][]string {
	var out [][]string
	for i := range ps {
		d := rs.Evaluate(st, &ps[i])
		names := []string{}
		for _, f := range d.Fired {
			names = append(names, f.Name)
		}
		out = append(out, names)
	}
	return out
}

func TestWindowEdges(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: two-in-5m, type: count, window: 5m, limit: 1, score: 50 }
  - { name: sum-5m, type: sum, window: 5m, limit: 1000, score: 50 }
`)
	cases := []struct {
		name   string
		second time.Duration
		want   []string
	}{
		{"previous payment exactly at t-window is outside", 5 * time.Minute, []string{}},
		{"previous payment 1ms after t-window is inside", 5*time.Minute - time.Millisecond, []string{"two-in-5m", "sum-5m"}},
		{"same timestamp is inside", 0, []string{"two-in-5m", "sum-5m"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &State{}
			got := firedNames(rs, st, pay("p1", 0, 600, "EUR"), pay("p2", c.second, 600, "EUR"))
			if !reflect.DeepEqual(got[1], c.want) {
				t.Fatalf("second payment fired %v, want %v", got[1], c.want)
			}
		})
	}
}

func TestLatePaymentSeesOnlyEarlierStampedPayments(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 10, block: 80 }
rules:
  - { name: burst, type: count, window: 1m, limit: 2, score: 50 }
`)
	st := &State{}
	got := firedNames(rs, st,
		pay("a", 10*time.Second, 1, "EUR"),
		pay("b", 50*time.Second, 1, "EUR"),
		// c is stamped before b: its window (t-1m, t] = (-40s, 20s] holds a and c only.
		pay("c", 20*time.Second, 1, "EUR"),
		// d's window (0s, 60s] holds a, b, c and d.
		pay("d", 60*time.Second, 1, "EUR"),
	)
	want := [][]string{{}, {}, {}, {"burst"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
}

func TestCurrencies(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR, rates: { USD: 0.5, JPY: 0.01 } }
rules:
  - { name: eur-sum, type: sum, window: 1h, limit: 10000, score: 50 }
  - { name: chf-sum, type: sum, window: 1h, limit: 1, currency: CHF, score: 50 }
  - { name: big-usd, type: amount, currency: USD, limit: 30000, score: 50 }
`)
	st := &State{}
	// 100.00 USD = 50.00 EUR; 5000 JPY (no minor unit) = 50.00 EUR; 1.00 EUR. Total 101.00 EUR > 100.00.
	p1, p2, p3 := pay("usd", 0, 10000, "USD"), pay("jpy", time.Second, 5000, "JPY"), pay("eur", 2*time.Second, 100, "EUR")
	rs.Evaluate(st, &p1)
	d2 := rs.Evaluate(st, &p2)
	if len(d2.Fired) != 0 {
		t.Fatalf("100.00 EUR in total must not fire yet, got %+v", d2.Fired)
	}
	d3 := rs.Evaluate(st, &p3)
	if len(d3.Fired) != 1 || d3.Fired[0].Name != "eur-sum" {
		t.Fatalf("want eur-sum only, got %+v", d3.Fired)
	}
	if want := "total 101.00 EUR in 1h > limit 100.00 EUR"; d3.Fired[0].Reason != want {
		t.Fatalf("reason %q, want %q", d3.Fired[0].Reason, want)
	}
	// CHF has no rate: the CHF rule cannot convert and says so instead of adding EUR and USD as if CHF.
	if !reflect.DeepEqual(d3.Unconverted, []string{"chf-sum"}) {
		t.Fatalf("unconverted %v, want [chf-sum]", d3.Unconverted)
	}
	// 700.00 EUR = 1400.00 USD > 300.00 USD limit of big-usd, converted.
	p4 := pay("big", 3*time.Second, 70000, "EUR")
	d4 := rs.Evaluate(st, &p4)
	names := []string{}
	for _, f := range d4.Fired {
		names = append(names, f.Name)
	}
	if !reflect.DeepEqual(names, []string{"eur-sum", "big-usd"}) {
		t.Fatalf("fired %v", names)
	}
}

func TestNoRatesMeansOnlySameCurrencyCounts(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: eur-sum, type: sum, window: 1h, limit: 100, currency: EUR, score: 50 }
`)
	st := &State{}
	p1, p2 := pay("usd", 0, 90, "USD"), pay("eur", time.Second, 90, "EUR")
	rs.Evaluate(st, &p1)
	d := rs.Evaluate(st, &p2)
	if len(d.Fired) != 0 {
		t.Fatalf("USD must not be added to EUR without a rate: %+v", d.Fired)
	}
}

func TestDistinct(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: globetrotter, type: distinct, field: country, window: 30m, limit: 2, score: 80 }
`)
	mk := func(id string, at time.Duration, country string) Payment {
		p := pay(id, at, 100, "EUR")
		p.Country = country
		return p
	}
	st := &State{}
	got := firedNames(rs, st,
		mk("1", 0, "DE"), mk("2", time.Minute, "DE"), mk("3", 2*time.Minute, "FR"),
		mk("4", 3*time.Minute, ""),    // empty values are not a country
		mk("5", 4*time.Minute, "US"),  // third country
		mk("6", 40*time.Minute, "PL"), // 30m later: DE, FR, US are out of the window
	)
	want := [][]string{{}, {}, {}, {}, {"globetrotter"}, {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
}

func TestScoreAndAction(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
rules:
  - { name: a, type: amount, limit: 100, score: 30 }
  - { name: b, type: amount, limit: 200, score: 30 }
  - { name: c, type: amount, limit: 300, score: 60 }
`)
	cases := []struct {
		amount int64
		score  int
		action Action
	}{
		{100, 0, ActionNone},
		{101, 30, ActionNone}, // fired, but below review
		{201, 60, ActionReview},
		{301, 100, ActionBlock}, // 120 capped at 100
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.amount), func(t *testing.T) {
			p := pay("p", 0, c.amount, "EUR")
			d := rs.Evaluate(&State{}, &p)
			if d.Score != c.score || d.Action != c.action {
				t.Fatalf("score %d action %q, want %d %q", d.Score, d.Action, c.score, c.action)
			}
		})
	}
}

func TestStateIsBoundedUnderABurst(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR }
state: { max_events: 32 }
rules:
  - { name: rapid, type: count, window: 5m, limit: 4, score: 50 }
  - { name: surge, type: sum, window: 1h, limit: 50000000, score: 50 }
  - { name: cards, type: distinct, field: card_id, window: 1h, limit: 10, score: 50 }
`)
	st := &State{}
	var last Decision
	const n = 100_000
	for i := range n {
		p := pay(fmt.Sprint("p", i), time.Duration(i)*10*time.Millisecond, 1000, "EUR") // 100,000 payments in 1000 s
		p.CardID = fmt.Sprint("card", i)
		last = rs.Evaluate(st, &p)
		st.Remember(p.ID, uint64(i), nil)
	}
	events, buckets := st.Size()
	if events > 32 || buckets > numBuckets+1 {
		t.Fatalf("state holds %d events and %d buckets", events, buckets)
	}
	enc, _ := st.MarshalBinary()
	if len(enc) > 64<<10 {
		t.Fatalf("encoded state is %d bytes", len(enc))
	}
	// Aggregation must not under-count: the window holds all 100,000 payments of 10.00 EUR = 1,000,000.00 EUR.
	reasons := map[string]string{}
	for _, f := range last.Fired {
		reasons[f.Name] = f.Reason
	}
	if !strings.HasPrefix(reasons["surge"], "total 1,000,000.00 EUR in 1h") {
		t.Fatalf("surge reason %q", reasons["surge"])
	}
	if !strings.HasPrefix(reasons["cards"], "11 distinct card_id values") {
		t.Fatalf("cards reason %q", reasons["cards"])
	}
	// 5 minutes = 30,000 payments, plus at most one bucket width at the window's start (1h/64 = 56.25 s).
	var count int64
	fmt.Sscanf(reasons["rapid"], "%d payments", &count)
	if count < 30_000 || count > 30_000+5625 {
		t.Fatalf("rapid counted %d, want 30000..35625", count)
	}
}

func TestPruneDropsWhatNoWindowReaches(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
state: { lateness: 0 }
rules:
  - { name: rapid, type: count, window: 5m, limit: 4, score: 50 }
`)
	st := &State{}
	for i := range 10 {
		p := pay(fmt.Sprint(i), time.Duration(i)*time.Hour, 1, "EUR")
		rs.Evaluate(st, &p)
	}
	if events, _ := st.Size(); events != 1 {
		t.Fatalf("state keeps %d events; the retention is 5m and payments are an hour apart", events)
	}
}

func TestSeenRemembersSourceAndAlert(t *testing.T) {
	st := &State{}
	st.Remember("pay_1", 7, []byte(`{"id":"a1"}`))
	st.Remember("pay_2", 8, nil)
	src, alert, ok := st.Lookup("pay_1")
	if !ok || src != 7 || string(alert) != `{"id":"a1"}` {
		t.Fatalf("lookup pay_1 = %d %q %v", src, alert, ok)
	}
	if _, _, ok := st.Lookup("pay_3"); ok {
		t.Fatal("pay_3 was never seen")
	}
	big := make([]byte, 1000)
	for i := range SeenCap + 10 {
		st.Remember(fmt.Sprint("x", i), uint64(i), big)
	}
	if _, _, ok := st.Lookup("pay_1"); ok {
		t.Fatal("the seen list must be bounded")
	}
	kept := 0
	for _, s := range st.seen {
		if s.alert != nil {
			kept++
		}
	}
	if len(st.seen) != SeenCap || kept != seenAlertBytes/len(big) || st.seen[SeenCap-1].alert == nil {
		t.Fatalf("seen %d with %d alerts kept", len(st.seen), kept)
	}
}

func TestStateCodecRoundTrip(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
state: { max_events: 16 }
rules:
  - { name: d, type: distinct, field: ip, window: 1h, limit: 3, score: 50 }
`)
	st := &State{Touched: 12345}
	for i := range 40 {
		p := pay(fmt.Sprint(i), time.Duration(i)*time.Minute, int64(i+1), []string{"EUR", "USD", "JPY"}[i%3])
		p.IP = fmt.Sprint("10.0.0.", i%5)
		p.Country = "DE"
		rs.Evaluate(st, &p)
		st.Remember(p.ID, uint64(i), []byte("alert"))
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(canon(&got), canon(st)) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, *st)
	}
	if n := st.encodedBound(); len(b) > n {
		t.Fatalf("encoding is %d bytes, over its bound of %d", len(b), n)
	}
	if n := testing.AllocsPerRun(10, func() { st.MarshalBinary() }); n != 1 {
		t.Fatalf("MarshalBinary allocates %v times, want once", n)
	}
	for i := range b {
		var s State
		_ = s.UnmarshalBinary(b[:i]) // truncated input must fail cleanly, never panic
	}
	if err := (&State{}).UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("trailing bytes must be an error")
	}
}

// A state is decoded to take the next payment: taking it, and remembering its id, must not grow the decoded
// slices (each growth is a new slice of twice the size and a copy, per payment of an account seen before).
func TestDecodedStateTakesAPaymentInPlace(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
state: { max_events: 256 }
rules:
  - { name: c, type: count, window: 1h, limit: 500, score: 50 } # never fires: an alert's reasons allocate
`)
	for _, held := range []int{1, 5, SeenCap + 3} {
		st := &State{}
		for i := range held {
			p := pay(fmt.Sprint(i), time.Duration(i)*time.Second, 100, "EUR")
			rs.Evaluate(st, &p)
			st.Remember(p.ID, uint64(i), nil)
		}
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		next := pay("next", time.Duration(held)*time.Second, 100, "EUR")
		var s State
		decode := testing.AllocsPerRun(20, func() { _ = s.UnmarshalBinary(b) })
		take := testing.AllocsPerRun(20, func() {
			_ = s.UnmarshalBinary(b)
			rs.Evaluate(&s, &next)
			s.Remember(next.ID, 99, nil)
		})
		if take != decode {
			t.Errorf("%d payments held: decoding allocates %v times, decoding and taking a payment %v", held, decode, take)
		}
	}
}

func TestParsePayment(t *testing.T) {
	valid := `{"id":"pay_123","account_id":"acct_42","amount":125050,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","merchant_id":"m_17","merchant_category":"5732","country":"DE","card_id":"card_9","device_id":"dev_3","ip":"203.0.113.9"}`
	p, err := ParsePayment([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Amount != 125050 || p.Country != "DE" || !p.Timestamp.Equal(t0) {
		t.Fatalf("parsed %+v", p)
	}
	// Producers that capitalise the names keep working, as they did with encoding/json.
	p, err = ParsePayment([]byte(`{"ID":"p","Account_ID":"a","Amount":7,"Currency":"EUR","Timestamp":"2026-11-22T10:00:00Z"}`))
	if err != nil || p.AccountID != "a" || p.Amount != 7 {
		t.Fatalf("capitalised names: %+v, %v", p, err)
	}
	cases := []struct {
		name, in, reason, field string
	}{
		{"not json", `{"id":`, ReasonNotJSON, ""},
		{"json null", `null`, ReasonMissingField, "id"},
		{"missing account", `{"id":"p","amount":1,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonMissingField, "account_id"},
		{"missing amount", `{"id":"p","account_id":"a","currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonMissingField, "amount"},
		{"amount as string", `{"id":"p","account_id":"a","amount":"12","currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadAmount, "amount"},
		{"fractional amount", `{"id":"p","account_id":"a","amount":12.5,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadAmount, "amount"},
		{"zero amount", `{"id":"p","account_id":"a","amount":0,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadAmount, "amount"},
		{"negative amount", `{"id":"p","account_id":"a","amount":-5,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadAmount, "amount"},
		{"lower-case currency", `{"id":"p","account_id":"a","amount":1,"currency":"eur","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadCurrency, "currency"},
		{"unknown currency", `{"id":"p","account_id":"a","amount":1,"currency":"XYZ","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadCurrency, "currency"},
		{"bad timestamp", `{"id":"p","account_id":"a","amount":1,"currency":"EUR","timestamp":"22.11.2026"}`, ReasonBadTimestamp, "timestamp"},
		{"amount twice", `{"id":"p","account_id":"a","amount":1,"amount":900000,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonNotJSON, ""},
		{"invalid utf-8", "{\"id\":\"p\xff\",\"account_id\":\"a\",\"amount\":1,\"currency\":\"EUR\",\"timestamp\":\"2026-11-22T10:00:00Z\"}", ReasonNotJSON, ""},
		{"trailing value", `{"id":"p","account_id":"a","amount":1,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"} {}`, ReasonNotJSON, ""},
		{"id as number", `{"id":5,"account_id":"a","amount":1,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`, ReasonBadType, "id"},
		{"huge field", `{"id":"p","account_id":"a","amount":1,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","ip":"` + strings.Repeat("9", 200) + `"}`, ReasonFieldTooLong, "ip"},
		{"huge message", `{"id":"` + strings.Repeat("x", MaxPaymentBytes) + `"}`, ReasonTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePayment([]byte(c.in))
			if RejectReason(err) != c.reason {
				t.Fatalf("err %v, want reason %s", err, c.reason)
			}
			if c.field != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", c.field)) {
				t.Fatalf("error %q does not name field %q", err, c.field)
			}
		})
	}
}

func TestInvalidRulesFiles(t *testing.T) {
	cases := []struct {
		name string
		yml  string
		want []string // every message must appear, in order
	}{
		{"bad duration", `
thresholds: { review: 50, block: 80 }
rules:
  - name: rapid-fire
    type: count
    window: 5x
    limit: 4
    score: 50
`, []string{`test.yaml:6: rule "rapid-fire": field "window": "5x" is not a duration`}},
		{"typo in a field name", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limt: 5, score: 50, currency: EUR }
`, []string{`test.yaml:4: rule "big": field "limt": unknown field in a rule`, `test.yaml:4: rule "big": field "limit": required for type amount`}},
		{"unknown type", `
thresholds: { review: 50, block: 80 }
rules:
  - name: x
    type: median
    score: 1
`, []string{`test.yaml:5: rule "x": field "type": "median" is not one of amount, count, sum, distinct`}},
		{"unknown distinct field", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: d, type: distinct, field: colour, window: 1h, limit: 2, score: 5 }
`, []string{`test.yaml:4: rule "d": field "field": "colour" is not one of country`}},
		{"money without a currency", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 5, score: 50 }
`, []string{`test.yaml:4: rule "big": field "currency": required`}},
		{"duplicate names", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: r, type: count, window: 1m, limit: 1, score: 5 }
  - { name: r, type: count, window: 1m, limit: 2, score: 5 }
`, []string{`test.yaml:5: rule "r": field "name": duplicate rule name (first defined on line 4)`}},
		{"thresholds out of order", `
thresholds: { review: 90, block: 80 }
rules: []
`, []string{`test.yaml:2: field "thresholds.block": 80 is below thresholds.review 90`}},
		{"score out of range", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: r, type: count, window: 1m, limit: 1, score: 500 }
`, []string{`test.yaml:4: rule "r": field "score": 500 is outside 0..100`}},
		{"distinct limit too high", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: r, type: distinct, field: ip, window: 1m, limit: 64, score: 5 }
`, []string{`field "limit": 64 is outside 0..63`}},
		{"retention shorter than a window", `
thresholds: { review: 50, block: 80 }
state: { retention: 10m }
rules:
  - { name: r, type: count, window: 1h, limit: 1, score: 5 }
`, []string{`field "state.retention": 10m is shorter than the longest window 1h`}},
		{"not yaml", "rules: [", []string{`test.yaml:1: not valid YAML`}},
		{"no rules", "thresholds: { review: 1, block: 2 }\n", []string{`field "rules": required`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(c.yml))
			if err == nil {
				t.Fatal("want an error")
			}
			msg := err.Error()
			for _, w := range c.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain\n%s", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestShippedExampleRulesAreValid(t *testing.T) {
	rs, err := LoadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) < 4 || rs.Digest == "" {
		t.Fatalf("example ruleset %+v", rs)
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		minor int64
		cur   string
		want  string
	}{
		{125050, "EUR", "1,250.50 EUR"}, {5, "EUR", "0.05 EUR"}, {1234567, "JPY", "1,234,567 JPY"},
		{1000, "KWD", "1.000 KWD"}, {100000000, "USD", "1,000,000.00 USD"},
	} {
		if got := FormatAmount(c.minor, c.cur); got != c.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
}

// A YAML syntax error names the line to look at, not the start of the rules list, and the rule it falls in.
func TestYAMLSyntaxErrorsNameTheLineAndTheRule(t *testing.T) {
	head := "thresholds: { review: 50, block: 80 }\ncurrencies: { base: EUR }\nrules:\n" +
		"  - name: big-ticket\n    type: amount\n    limit: 500000\n    score: 60\n"
	for name, c := range map[string]struct {
		tail string
		want string
	}{
		"a key indented too far":    {"  - name: rapid-fire\n    type: count\n    window: 5m\n     limit: 4\n    score: 50\n", `test.yaml:11: rule "rapid-fire": not valid YAML`},
		"a key indented too little": {"  - name: rapid-fire\n    type: count\n    window: 5m\n   limit: 4\n    score: 50\n", `test.yaml:11: rule "rapid-fire": not valid YAML`},
		"an unclosed quote":         {"  - name: \"rapid-fire\n    type: count\n    score: 50\n", `test.yaml:8: rule "rapid-fire": not valid YAML`},
		"an unclosed flow mapping":  {"  - { name: rapid-fire, type: count, window: 5m, limit: 4, score: 50\n  - { name: x, type: amount, limit: 1, score: 1 }\n", `test.yaml:8: rule "rapid-fire": not valid YAML`},
		"outside the rules":         {"  - { name: x, type: amount, limit: 1, score: 1 }\nstate:\n  max_events: [16\n", `test.yaml:`},
	} {
		_, err := Parse("test.yaml", []byte(head+c.tail))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v; want it to start with %s", name, err, c.want)
		}
		if name == "outside the rules" && err != nil && strings.Contains(err.Error(), "rule \"") {
			t.Errorf("%s: %v names a rule", name, err)
		}
	}
}
