package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestListRulesAndAllowLists(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "blocked.txt"), []byte("# bad merchants\nm_evil\n\nm_worse # since June\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "trusted.txt"), []byte("dev_office\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(`
thresholds: { review: 50, block: 80 }
lists:
  blocked-merchants: { file: blocked.txt }
  trusted-devices: { file: trusted.txt }
  blocked-ips: {}                       # entries come from the lists topic only
allow:
  - { list: trusted-devices, field: device_id }
rules:
  - { name: bad-merchant, type: list, field: merchant_id, list: blocked-merchants, score: 90 }
  - { name: bad-ip, type: list, field: ip, list: blocked-ips, score: 60 }
`), 0o644)
	rs, err := LoadFile(filepath.Join(dir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Bundle.Files) != 2 {
		t.Fatalf("bundle carries %d list files, want 2", len(rs.Bundle.Files))
	}
	topic := staticLists{"blocked-ips": {"203.0.113.9": true}}
	cases := []struct {
		merchant, device, ip string
		action               Action
		allowed              string
	}{
		{"m_ok", "dev_1", "198.51.100.1", ActionNone, ""},
		{"m_evil", "dev_1", "", ActionBlock, ""},
		{"m_worse", "dev_1", "", ActionBlock, ""},
		{"m_ok", "dev_1", "203.0.113.9", ActionReview, ""},
		{"m_evil", "dev_office", "", ActionNone, "trusted-devices:device_id=dev_office"},
	}
	for i, c := range cases {
		p := pay("p", time.Duration(i)*time.Minute, 100, "EUR")
		p.MerchantID, p.DeviceID, p.IP = c.merchant, c.device, c.ip
		d := rs.EvaluateWith(new(State), &p, Env{Lists: topic})
		if d.Action != c.action || d.Allowed != c.allowed {
			t.Errorf("%+v: action %q allowed %q, want %q %q (fired %v)", c, d.Action, d.Allowed, c.action, c.allowed, d.Fired)
		}
	}
	// The bundle alone rebuilds the same ruleset, as a detector on another machine does from the rules topic.
	again, err := ParseBundle(rs.Bundle)
	if err != nil || again.Digest != rs.Digest || !reflect.DeepEqual(again.Lists, rs.Lists) {
		t.Fatalf("bundle round trip: %v, digest %s vs %s", err, again.Digest, rs.Digest)
	}
}

type staticLists map[string]map[string]bool

func (s staticLists) Contains(list, v string) bool { return s[list][v] }

func TestDeviationFromTheAccountsBaseline(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 40, block: 80 }
rules:
  - { name: unusual-amount, type: deviation, factor: 4, min_payments: 5, score: 40 }
`)
	st := new(State)
	amounts := []int64{4000, 4500, 3800, 4200, 4100} // about 40 EUR, five times
	for i, a := range amounts {
		p := pay("p", time.Duration(i)*time.Hour, a, "EUR")
		if d := rs.Evaluate(st, &p); len(d.Fired) != 0 {
			t.Fatalf("payment %d fired with a baseline of %d payments", i, i)
		}
	}
	normal := pay("n", 10*time.Hour, 5000, "EUR")
	if d := rs.Evaluate(st, &normal); len(d.Fired) != 0 {
		t.Fatalf("50 EUR against a 40 EUR habit fired: %v", d.Fired)
	}
	big := pay("b", 11*time.Hour, 90000, "EUR")
	d := rs.Evaluate(st, &big)
	if len(d.Fired) != 1 || !strings.Contains(d.Fired[0].Reason, "above the account's mean 42.67 EUR") {
		t.Fatalf("900 EUR against a 40 EUR habit: %+v", d)
	}
}

func TestImpossibleTravel(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: impossible-travel, type: travel, max_speed_kmh: 900, score: 60 }
`)
	at := func(id string, after time.Duration, country string, lat, lon *float64) Payment {
		p := pay(id, after, 100, "EUR")
		p.Country, p.Lat, p.Lon = country, lat, lon
		return p
	}
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		name string
		ps   []Payment
		want []bool
	}{
		{"Berlin then New York 30 minutes later", []Payment{at("1", 0, "DE", nil, nil), at("2", 30*time.Minute, "US", nil, nil)}, []bool{false, true}},
		{"Berlin then New York 12 hours later", []Payment{at("1", 0, "DE", nil, nil), at("2", 12*time.Hour, "US", nil, nil)}, []bool{false, false}},
		{"neighbours are within the minimum distance", []Payment{at("1", 0, "DE", nil, nil), at("2", time.Minute, "AT", nil, nil)}, []bool{false, false}},
		{"coordinates win over the country", []Payment{
			at("1", 0, "FR", f(48.85), f(2.35)),        // Paris
			at("2", time.Hour, "FR", f(43.3), f(5.37)), // Marseille, 660 km an hour later
		}, []bool{false, false}},
		{"an unknown country never fires", []Payment{at("1", 0, "DE", nil, nil), at("2", time.Minute, "", nil, nil)}, []bool{false, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := new(State)
			for i := range c.ps {
				d := rs.Evaluate(st, &c.ps[i])
				if got := len(d.Fired) == 1; got != c.want[i] {
					t.Fatalf("payment %d fired=%v, want %v (%v)", i, got, c.want[i], d.Fired)
				}
			}
		})
	}
}

func TestCooldownAndShadowMode(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60, cooldown: 1h }
  - { name: trial, type: amount, limit: 500, currency: EUR, score: 100, mode: shadow }
`)
	st := new(State)
	type out struct {
		action Action
		fired  int
		cooled int
		shadow int
	}
	var got []out
	for i, after := range []time.Duration{0, 10 * time.Minute, 59 * time.Minute, 61 * time.Minute} {
		p := pay(string(rune('a'+i)), after, 2000, "EUR")
		d := rs.Evaluate(st, &p)
		got = append(got, out{d.Action, len(d.Fired), len(d.Cooled), len(d.Shadow)})
	}
	want := []out{
		{ActionReview, 1, 0, 1}, // alerts; the shadow rule fires but adds nothing (100 would have blocked)
		{ActionNone, 0, 1, 1},   // within the hour: cooled down
		{ActionNone, 0, 1, 1},
		{ActionReview, 1, 0, 1}, // an hour after the first alert: alerts again
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestExpressionRules(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
currencies: { base: EUR, rates: { USD: 0.92 } }
rules:
  - name: foreign-big
    type: expression
    expr: payment.amount > 3 * account.avg_amount_24h && payment.country != account.home_country
    score: 50
`)
	if rs.Retention < 24*time.Hour {
		t.Fatalf("retention %s: an expression over 24h aggregates needs 24h", rs.Retention)
	}
	st := new(State)
	var fired []bool
	for i, c := range []struct {
		amount  int64
		country string
	}{{5000, "DE"}, {5000, "DE"}, {20000, "DE"}, {40000, "FR"}, {6000, "FR"}} {
		p := pay(string(rune('a'+i)), time.Duration(i)*time.Hour, c.amount, "EUR")
		p.Country = c.country
		fired = append(fired, len(rs.Evaluate(st, &p).Fired) == 1)
	}
	// The first payment defines home. 200 at home: no; 400 abroad, average 100: yes; 60 abroad: no.
	if want := []bool{false, false, false, true, false}; !reflect.DeepEqual(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
}

func TestInvalidNewRuleTypes(t *testing.T) {
	cases := []struct{ name, yml, want string }{
		{"type error in an expression", `
thresholds: { review: 50, block: 80 }
rules:
  - name: bad-expr
    type: expression
    expr: payment.amount > "big"
    score: 10
`, `test.yaml:6: rule "bad-expr": field "expr": ERROR: expr:1:16: found no matching overload for '_>_' applied to '(int, string)'`},
		{"unknown variable", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: typo, type: expression, expr: "payment.amout > 5", score: 10 }
`, `rule "typo": field "expr": ERROR: expr:1:1: undeclared reference to 'payment'`},
		{"not boolean", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: num, type: expression, expr: "payment.amount + 1", score: 10 }
`, `rule "num": field "expr": the expression is int, it must be bool`},
		{"list not declared", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: l, type: list, field: ip, list: nope, score: 10 }
`, `rule "l": field "list": no list "nope" in the lists section`},
		{"list file missing from the bundle", `
thresholds: { review: 50, block: 80 }
lists: { bad: { file: bad.txt } }
rules: []
`, `test.yaml:3: field "lists.bad.file": bad.txt: not in the ruleset`},
		{"bad mode", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: m, type: amount, limit: 1, currency: EUR, score: 10, mode: dry }
`, `rule "m": field "mode": "dry" is not live or shadow`},
		{"field of another type", `
thresholds: { review: 50, block: 80 }
rules:
  - { name: t, type: travel, factor: 3, score: 10 }
`, `rule "t": field "factor": does not apply to type travel`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(c.yml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant it to contain %s", err, c.want)
			}
		})
	}
}

func TestProfileSurvivesTheCodec(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60, cooldown: 1h }
`)
	st := new(State)
	p := pay("a", 0, 2000, "EUR")
	p.Country = "DE"
	rs.Evaluate(st, &p)
	st.Remember(p.ID, 1, nil)
	b, _ := st.MarshalBinary()
	if n := st.encodedBound(); len(b) > n {
		t.Fatalf("encoding is %d bytes, over its bound of %d", len(b), n)
	}
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	later := p.Timestamp.UnixMilli() + 1
	if b := rs.baselineBefore(&got, later); b != rs.baselineBefore(st, later) || b.n != 1 || got.homeBefore(later) != "DE" ||
		got.last != st.last || !reflect.DeepEqual(got.cooldowns, st.cooldowns) {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestRulesGroupedByAnotherField(t *testing.T) {
	rs := mustParse(t, `
thresholds: { review: 50, block: 80 }
rules:
  - { name: shared-device, type: distinct, by: device_id, field: account_id, window: 1h, limit: 3, score: 50 }
  - { name: hot-card, type: count, by: card_id, window: 10m, limit: 2, score: 30 }
`)
	if got := rs.GroupFields(); !reflect.DeepEqual(got, []Field{FieldCardID, FieldDeviceID}) {
		t.Fatalf("group fields %v", got)
	}
	e := NewEngine(rs, Env{})
	var out []string
	for i, acct := range []string{"a1", "a2", "a2", "a3", "a4", "a5"} {
		p := Payment{ID: fmt.Sprint("p", i), AccountID: acct, Amount: 100, Currency: "EUR",
			Timestamp: t0.Add(time.Duration(i) * time.Minute), DeviceID: "dev_1", CardID: "card_" + acct}
		d, _ := e.Score(&p)
		names := []string{}
		for _, f := range d.Fired {
			names = append(names, f.Name+": "+f.Reason)
		}
		out = append(out, strings.Join(names, "; "))
	}
	want := []string{"", "", "", "", // a2 twice is one account; the fourth account is a4
		"shared-device: 4 distinct account_id values for device_id dev_1 in 1h > limit 3",
		"shared-device: 4 distinct account_id values for device_id dev_1 in 1h > limit 3"} // counting stops at limit+1
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
	// A payment without a device skips that grouping; a third use of one card in 10 minutes fires hot-card.
	e = NewEngine(rs, Env{})
	for i := range 3 {
		p := Payment{ID: fmt.Sprint("q", i), AccountID: fmt.Sprint("b", i), Amount: 100, Currency: "EUR", Timestamp: t0, CardID: "card_x"}
		d, _ := e.Score(&p)
		if fired := len(d.Fired) == 1 && d.Fired[0].Name == "hot-card"; fired != (i == 2) {
			t.Fatalf("payment %d: %+v", i, d.Fired)
		}
	}
	if _, err := Parse("t.yaml", []byte("thresholds: { review: 50, block: 80 }\nrules:\n  - { name: x, type: amount, by: ip, limit: 1, currency: EUR, score: 1 }\n")); err == nil ||
		!strings.Contains(err.Error(), `rule "x": field "by": does not apply to type amount`) {
		t.Fatalf("by on an amount rule: %v", err)
	}
}
