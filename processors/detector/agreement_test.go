package detector_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"

	"github.com/fraudpipe/fraudpipe/processors/detector"
	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// agreementRules are the shipped rules with every rule enforced, the commented-out expression rule switched on,
// and rules grouped by device and IP added, so that every step of a payment's order of work takes part.
func agreementRules(t *testing.T) *rules.Ruleset {
	t.Helper()
	src, err := os.ReadFile("../../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.ReplaceAll(string(src), "mode: shadow", "")
	y = strings.ReplaceAll(y, "  # - name: foreign-spike", "  - name: foreign-spike")
	y = strings.ReplaceAll(y, "  #   ", "    ")
	y += `
  - { name: shared-device, type: count, by: device_id, window: 10m, limit: 3, score: 50 }
  - { name: ip-many-accounts, type: distinct, field: account_id, by: ip, window: 30m, limit: 2, score: 40 }
`
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "lists"), os.DirFS("../../examples/lists")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.GroupFields()) != 2 {
		t.Fatalf("grouped by %v, want device and IP", rs.GroupFields())
	}
	return rs
}

// agreementStream is generated traffic made harder: a few shared devices and IPs, payments held back and sent
// late (out of event-time order), and producer retries of some payment ids.
func agreementStream(n int) []rules.Payment {
	g := producer.NewGenerator(7, 1500, 0.03, t0, 10*time.Minute)
	rng := rand.New(rand.NewPCG(7, 8))
	var out, held []rules.Payment
	for len(out) < n {
		p := g.Next()
		if rng.IntN(25) == 0 {
			p.DeviceID = fmt.Sprintf("dev_shared_%d", rng.IntN(8))
		}
		if rng.IntN(30) == 0 {
			p.IP = fmt.Sprintf("192.0.2.%d", rng.IntN(6))
		}
		if rng.IntN(60) == 0 { // a big payment abroad
			p.Country, p.Amount = "BR", p.Amount*8
		}
		if rng.IntN(10) == 0 {
			held = append(held, p)
			continue
		}
		out = append(out, p)
		if rng.IntN(40) == 0 {
			out = append(out, out[rng.IntN(len(out))]) // a producer's retry, perhaps long after
		}
		if len(held) > 0 && rng.IntN(8) == 0 {
			i := rng.IntN(len(held))
			out = append(out, held[i])
			held = slices.Delete(held, i, i+1)
		}
	}
	return append(out, held...)
}

type outcome struct {
	action rules.Action
	score  int
	rules  string
}

func describe(action rules.Action, score int, fired []rules.Fired) outcome {
	names := make([]string, 0, len(fired))
	for _, f := range fired {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return outcome{action, score, strings.Join(names, ",")}
}

// The detector and the backtests score through the same steps (rules/steps.go): on a large generated stream with
// grouped rules, late arrivals and retries, every payment's newest outcome in the detector's alerts topic is the
// one the Engine (which backtests and fixtures run on) gives it.
func TestDetectorAndEngineAgree(t *testing.T) {
	rs := agreementRules(t)
	stream := agreementStream(20000)

	engine := rules.NewEngine(rs, rules.Env{})
	want := map[string]outcome{}
	for i := range stream {
		d, dup := engine.Score(&stream[i])
		if dup {
			continue
		}
		if d.Action != rules.ActionNone {
			want[stream[i].ID] = describe(d.Action, d.Score, d.Fired)
		}
		for _, l := range d.Late {
			want[l.Payment.ID] = describe(l.Decision.Action, l.Decision.Score, l.Decision.Fired)
		}
	}

	f := runDetector(t, detector.Config{Rules: func() *rules.Ruleset { return rs }, Partitions: 1, Now: func() time.Time { return now }})
	for _, p := range stream {
		b, _ := json.Marshal(p)
		f.tt.Consume(string(topics.Payments), p.AccountID, b, tester.WithTime(t0))
	}
	got := map[string]outcome{}
	late := 0
	for _, a := range f.drainAlerts() {
		got[a.PaymentID] = describe(a.Action, a.Score, a.Rules)
		if a.Late {
			late++
		}
	}

	var diffs []string
	for id, w := range want {
		if g := got[id]; g != w {
			diffs = append(diffs, fmt.Sprintf("%s: engine %+v, detector %+v", id, w, g))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: engine no alert, detector %+v", id, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%d of %d alerted payments differ, e.g.\n%s", len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	kinds := map[string]bool{}
	for _, o := range want {
		for _, r := range strings.Split(o.rules, ",") {
			kinds[r] = true
		}
	}
	t.Logf("%d payments, %d alerted, %d late alerts, rules fired: %v", len(stream), len(want), late, slices.Sorted(func(yield func(string) bool) {
		for k := range kinds {
			if !yield(k) {
				return
			}
		}
	}))
	for _, r := range []string{"shared-device", "ip-many-accounts", "foreign-spike", "unusual-amount", "impossible-travel"} {
		if !kinds[r] {
			t.Errorf("rule %s never fired: the stream does not exercise it", r)
		}
	}
	if late == 0 {
		t.Error("no late alert: the stream does not exercise late arrivals")
	}
}
