package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Fixtures are sample payments with the alerts a ruleset must raise for them, kept in YAML beside the rules
// file (rules.yaml → rules.test.yaml) so that a change to the rules is checked like a change to code.
//
//	cases:
//	  - name: a big ticket is reviewed
//	    lists: { blocked-ips: [203.0.113.9] }     # entries of the lists topic, for this case
//	    payments:
//	      - { id: p1, account_id: a1, amount: 600000, currency: EUR, timestamp: "2026-11-22T10:00:00Z" }
//	    alerts:                                    # exactly these payments alert; any other alert fails
//	      - { payment: p1, action: review, rules: [big-ticket] }
type Fixtures struct {
	Cases []FixtureCase `yaml:"cases"`
}

// FixtureCase is one scenario; every case starts from empty state.
type FixtureCase struct {
	Name     string              `yaml:"name"`
	Lists    map[string][]string `yaml:"lists"`
	Payments []map[string]any    `yaml:"payments"`
	Alerts   []FixtureAlert      `yaml:"alerts"`
}

// FixtureAlert is an expected alert: the payment, its action and the rules that fired (in any order).
type FixtureAlert struct {
	Payment string   `yaml:"payment"`
	Action  Action   `yaml:"action"`
	Rules   []string `yaml:"rules"`
}

// FixturesPath is where the fixtures of a rules file live by default.
func FixturesPath(rulesPath string) string {
	if base, ok := strings.CutSuffix(rulesPath, ".yaml"); ok {
		return base + ".test.yaml"
	}
	return rulesPath + ".test.yaml"
}

// LoadFixtures reads a fixtures file.
func LoadFixtures(path string) (*Fixtures, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fixtures: %w", err)
	}
	var f Fixtures
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return &f, nil
}

// CaseResult is the outcome of one case: Diff is empty when it passed.
type CaseResult struct {
	Name string
	Diff []string
}

// RunFixtures runs every case against rs.
func RunFixtures(rs *Ruleset, f *Fixtures) []CaseResult {
	out := make([]CaseResult, 0, len(f.Cases))
	for i, c := range f.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		out = append(out, CaseResult{Name: name, Diff: runCase(rs, c)})
	}
	return out
}

type fixtureLists map[string][]string

func (l fixtureLists) Contains(list, v string) bool { return slices.Contains(l[list], v) }

func describe(a Action, rules []string) string {
	if a == ActionNone {
		return "no alert"
	}
	slices.Sort(rules)
	return fmt.Sprintf("%s [%s]", a, strings.Join(rules, ", "))
}

func runCase(rs *Ruleset, c FixtureCase) []string {
	var diff []string
	want := map[string]string{}
	for _, a := range c.Alerts {
		want[a.Payment] = describe(a.Action, slices.Clone(a.Rules))
	}
	e := NewEngine(rs, Env{Lists: fixtureLists(c.Lists)})
	got := map[string]string{}
	var order []string
	for i, raw := range c.Payments {
		b, err := json.Marshal(raw)
		if err == nil {
			var p Payment
			if p, err = ParsePayment(b); err == nil {
				d, _ := e.Score(&p)
				names := make([]string, 0, len(d.Fired))
				for _, f := range d.Fired {
					names = append(names, f.Name)
				}
				got[p.ID] = describe(d.Action, names)
				order = append(order, p.ID)
				// A payment may re-score earlier ones of its account: their outcome is the newest.
				for _, l := range d.Late {
					names := make([]string, 0, len(l.Decision.Fired))
					for _, f := range l.Decision.Fired {
						names = append(names, f.Name)
					}
					got[l.Payment.ID] = describe(l.Decision.Action, names)
				}
				continue
			}
		}
		diff = append(diff, fmt.Sprintf("payment #%d is invalid: %v", i+1, err))
	}
	for _, id := range order {
		w, ok := want[id]
		if !ok {
			w = "no alert"
		}
		if got[id] != w {
			diff = append(diff, fmt.Sprintf("payment %s: want %s, got %s", id, w, got[id]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[id]; !ok {
			diff = append(diff, fmt.Sprintf("alert for payment %s: no such payment in the case", id))
		}
	}
	return diff
}

// ErrFixturesFailed is returned when some case failed.
var ErrFixturesFailed = errors.New("fixtures failed")
