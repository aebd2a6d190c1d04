package rules

import (
	"bufio"
	"os"
	"reflect"
	"testing"
)

// The shipped example payments, sent to a pipeline with the shipped rules, raise exactly the alerts the README
// promises.
func TestShippedExamplesAlertAsDocumented(t *testing.T) {
	rs, err := LoadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../examples/payments.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	states := map[string]*State{}
	got := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, err := ParsePayment(sc.Bytes())
		if err != nil {
			t.Fatalf("example payment invalid: %v", err)
		}
		if states[p.AccountID] == nil {
			states[p.AccountID] = new(State)
		}
		d := rs.Evaluate(states[p.AccountID], &p)
		if d.Action != ActionNone {
			got[p.ID] = string(d.Action) + " " + d.Fired[0].Name
		}
	}
	want := map[string]string{
		"pay_1004": "review big-ticket",
		"pay_1104": "review rapid-fire",
		"pay_1202": "block globetrotter",
		"pay_1302": "review spend-surge",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
}

// The shipped fixtures pass against the shipped rules (make test also runs them through the CLI).
func TestShippedFixturesPass(t *testing.T) {
	rs, err := LoadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := LoadFixtures(FixturesPath("../examples/rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range RunFixtures(rs, f) {
		if len(r.Diff) > 0 {
			t.Errorf("%s: %v", r.Name, r.Diff)
		}
	}
}
