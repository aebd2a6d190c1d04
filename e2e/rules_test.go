package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/producer"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// fraudpipeCLI runs a fraudpipe command to completion.
func fraudpipeCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// markers parses "payments/0@12 payments/1@40 ..." from push and rollback output.
func markers(t *testing.T, out string) map[int32]int64 {
	t.Helper()
	m := map[int32]int64{}
	for _, s := range regexp.MustCompile(`payments/(\d+)@(\d+)`).FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(s[1])
		o, _ := strconv.ParseInt(s[2], 10, 64)
		m[int32(p)] = o
	}
	if len(m) == 0 {
		t.Fatalf("no switch markers in %q", out)
	}
	return m
}

type position struct {
	partition int32
	offset    int64
}

// paymentPositions maps payment id to where it sits on the payments topic.
func paymentPositions(t *testing.T, brokers string) map[string]position {
	t.Helper()
	out, err := exec.Command("kcat", "-C", "-b", brokers, "-t", "payments", "-o", "beginning", "-e", "-q",
		"-f", "%p %o %s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	pos := map[string]position{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 3 {
			continue
		}
		var p struct {
			ID string `json:"id"`
		}
		if json.Unmarshal([]byte(f[2]), &p) != nil || p.ID == "" {
			continue // a switch marker
		}
		part, _ := strconv.Atoi(f[0])
		off, _ := strconv.ParseInt(f[1], 10, 64)
		pos[p.ID] = position{int32(part), off}
	}
	return pos
}

// A version pushed while payments flow takes effect exactly at its switch marker in every partition: payments
// before it are scored by the old version, payments after it by the new one, and alerts say which. A rollback
// is a new version with the old content; an invalid push is refused and changes nothing.
func TestRulesVersionsSwitchAtTheirMarkersAndRollBack(t *testing.T) {
	p := startPipeline(t)
	dir := filepath.Dir(p.rulesPath)
	shipped, _ := os.ReadFile(p.rulesPath)
	lowered := strings.Replace(string(shipped), "limit: 500000 ", "limit: 100000 ", 1)
	candidate := filepath.Join(dir, "candidate.yaml")
	os.WriteFile(candidate, []byte(lowered), 0o644)

	out, _, err := fraudpipeCLI(t, "rules", "plan", "--brokers", p.brokers, candidate)
	if err != nil || !strings.Contains(out, "~ rule big-ticket: limit 500000 → 100000") || !strings.Contains(out, "live: version 1") {
		t.Fatalf("plan: %v\n%s", err, out)
	}

	// 2,000.00 EUR each, one account each: only big-ticket at the lowered limit can fire.
	batch := func(prefix string, n int) []string {
		var lines []string
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			lines = append(lines, "acct_"+id+"|"+pay(id, "acct_"+id, 200000, "EUR", "2026-11-22T10:00:00Z", "DE"))
		}
		return lines
	}
	// The stream runs from before the push until two batches after it, so the markers land inside it; exactly
	// where is read back from the markers.
	kcatProduce(t, p.brokers, "payments", true, batch("a0_", 40)...)
	pushed := make(chan struct{})
	var wg sync.WaitGroup
	var sent int
	var produceErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		after := 0
		for i := 1; after < 2; i++ {
			select {
			case <-pushed:
				after++
			default:
			}
			// Not kcatProduce: only the test's own goroutine may fail it.
			if produceErr = kcatProduceErr(p.brokers, "payments", true, batch(fmt.Sprintf("a%d_", i), 40)...); produceErr != nil {
				return
			}
			sent += 40
		}
	}()
	out, errOut, err := fraudpipeCLI(t, "rules", "push", "--brokers", p.brokers, "--comment", "lower big-ticket", candidate)
	close(pushed)
	if err != nil || !strings.Contains(out, "published version 2") {
		t.Fatalf("push: %v\n%s%s", err, out, errOut)
	}
	v2 := markers(t, out)
	wg.Wait()
	if produceErr != nil {
		t.Fatal(produceErr)
	}
	total := float64(40 + sent)
	waitFor(t, 60*time.Second, "the stream to be scored", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= total
	})

	out, _, err = fraudpipeCLI(t, "rules", "rollback", "--brokers", p.brokers, "1")
	if err != nil || !strings.Contains(out, "published version 3 with the content of version 1") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	v3 := markers(t, out)
	kcatProduce(t, p.brokers, "payments", true, append(batch("c_", 20),
		"acct_big|"+pay("big", "acct_big", 600000, "EUR", "2026-11-22T10:00:00Z", "DE"))...)
	waitFor(t, 60*time.Second, "the last batch to be scored", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= total+21
	})

	// An invalid push is refused with file, line, rule and field, and publishes nothing.
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte(strings.Replace(string(shipped), "limit: 500000 ", "limit: lots ", 1)), 0o644)
	_, errOut, err = fraudpipeCLI(t, "rules", "push", "--brokers", p.brokers, broken)
	if err == nil || !strings.Contains(errOut, broken+":") || !strings.Contains(errOut, `rule "big-ticket": field "limit"`) ||
		!strings.Contains(errOut, "refused, nothing published") {
		t.Fatalf("invalid push: %v\n%s", err, errOut)
	}
	out, _, err = fraudpipeCLI(t, "rules", "list", "--brokers", p.brokers)
	if err != nil || strings.Count(out, "\n") != 4 || !strings.Contains(out, "lower big-ticket") || !strings.Contains(out, "(content of version 1)") {
		t.Fatalf("list after the refused push: %v\n%s", err, out)
	}

	pos := paymentPositions(t, p.brokers)
	want := map[string]int{} // payment id → version of its alert
	for id, at := range pos {
		if id != "big" && at.offset > v2[at.partition] && at.offset < v3[at.partition] {
			want[id] = 2
		}
	}
	want["big"] = 3
	if len(want) < 2 || len(want) > 40+sent {
		t.Fatalf("%d payments between the markers: the test did not exercise a switch", len(want)-1)
	}
	t.Logf("%d of %d streamed payments lie between the markers of versions 2 and 3", len(want)-1, 40+sent)
	waitFor(t, 60*time.Second, "every alert", func() bool { return len(decodeAlerts(t, kcatConsume(t, p.brokers, "alerts"))) >= len(want) })
	got := map[string]int{}
	for _, a := range decodeAlerts(t, kcatConsume(t, p.brokers, "alerts")) {
		got[a.PaymentID] = a.RulesetVersion
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("payment %s at %v: alert version %d, want %d", id, pos[id], got[id], v)
		}
	}
	for id, v := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("payment %s at %v alerted with version %d; it lies outside version 2's markers %v..%v", id, pos[id], v, v2, v3)
		}
	}
}

// What a backtest says the candidate alerts is what the pipeline then alerts, once the candidate is live.
func TestBacktestMatchesThePipeline(t *testing.T) {
	p := startPipeline(t)
	dir := filepath.Dir(p.rulesPath)
	shipped, _ := os.ReadFile(p.rulesPath)
	cand := strings.Replace(string(shipped), "limit: 1000000 ", "limit: 400000 ", 1) // spend-surge lowered
	if cand == string(shipped) {
		t.Fatal("the shipped rules changed; update this test's edit")
	}
	candidate := filepath.Join(dir, "candidate.yaml")
	os.WriteFile(candidate, []byte(cand), 0o644)

	g := producer.NewGenerator(7, 300, 0.02, time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), time.Hour)
	var file, kafkaLines []string
	for range 3000 {
		pm := g.Next()
		b, _ := json.Marshal(pm)
		file = append(file, string(b))
		kafkaLines = append(kafkaLines, pm.AccountID+"|"+string(b))
	}
	paymentsFile := filepath.Join(dir, "payments.jsonl")
	os.WriteFile(paymentsFile, []byte(strings.Join(file, "\n")+"\n"), 0o644)

	out, errOut, err := fraudpipeCLI(t, "rules", "backtest", "--live", p.rulesPath, "--payments", paymentsFile, "--json", candidate)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut)
	}
	var rep rules.BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("backtest JSON: %v\n%s", err, out)
	}
	if rep.Payments != 3000 || len(rep.NewlyAlerting) == 0 || rep.CandidateAlerts <= rep.LiveAlerts {
		t.Fatalf("the candidate should alert more than the live rules: %d payments, live %d, candidate %d, newly %d",
			rep.Payments, rep.LiveAlerts, rep.CandidateAlerts, len(rep.NewlyAlerting))
	}
	human, _, err := fraudpipeCLI(t, "rules", "backtest", "--live", p.rulesPath, "--payments", paymentsFile, candidate)
	if err != nil || !strings.Contains(human, "spend-surge") || !strings.Contains(human, fmt.Sprintf("newly alerting: %d", len(rep.NewlyAlerting))) {
		t.Fatalf("backtest report: %v\n%s", err, human)
	}

	if out, errOut, err := fraudpipeCLI(t, "rules", "push", "--brokers", p.brokers, candidate); err != nil {
		t.Fatalf("push: %v\n%s%s", err, out, errOut)
	}
	kcatProduce(t, p.brokers, "payments", true, kafkaLines...)
	want := map[string]string{}
	for _, a := range rep.Candidate {
		want[a.PaymentID] = a.Candidate
	}
	var got map[string]string
	waitFor(t, 90*time.Second, "the pipeline's alerts", func() bool {
		got = map[string]string{}
		for _, a := range decodeAlerts(t, kcatConsume(t, p.brokers, "alerts")) {
			got[a.PaymentID] = describeAlert(a)
		}
		return len(got) >= len(want)
	})
	var diff []string
	for id, w := range want {
		if got[id] != w {
			diff = append(diff, fmt.Sprintf("%s: backtest %q, pipeline %q", id, w, got[id]))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diff = append(diff, fmt.Sprintf("%s: backtest no alert, pipeline %q", id, g))
		}
	}
	slices.Sort(diff)
	if len(diff) > 0 {
		t.Fatalf("%d differences, e.g.\n%s", len(diff), strings.Join(diff[:min(10, len(diff))], "\n"))
	}

	// Replayed from the payments topic instead of the file, against the live version (now the candidate), the
	// candidate alerts the same payments and differs from the live ruleset in nothing.
	out, errOut, err = fraudpipeCLI(t, "rules", "backtest", "--brokers", p.brokers, "--json", candidate)
	if err != nil {
		t.Fatalf("backtest from the topic: %v\n%s", err, errOut)
	}
	var fromTopic rules.BacktestReport
	if err := json.Unmarshal([]byte(out), &fromTopic); err != nil {
		t.Fatal(err)
	}
	candidates := func(ds []rules.AlertDiff) []string { // sorted: the topic replays partition by partition
		var out []string
		for _, d := range ds {
			out = append(out, d.PaymentID+" "+d.Candidate)
		}
		slices.Sort(out)
		return out
	}
	if fromTopic.Payments != 3000 || !reflect.DeepEqual(candidates(fromTopic.Candidate), candidates(rep.Candidate)) ||
		len(fromTopic.NewlyAlerting)+len(fromTopic.StopAlerting)+len(fromTopic.Changed) != 0 {
		t.Fatalf("from the topic: %d payments, %d candidate alerts (file: %d), %d/%d/%d differences from live",
			fromTopic.Payments, len(fromTopic.Candidate), len(rep.Candidate), len(fromTopic.NewlyAlerting), len(fromTopic.StopAlerting), len(fromTopic.Changed))
	}
}

func describeAlert(a topics.Alert) string {
	names := make([]string, 0, len(a.Rules))
	for _, r := range a.Rules {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return fmt.Sprintf("%s [%s]", a.Action, strings.Join(names, ", "))
}

// A rule grouped by device counts across accounts over a real broker: each payment visits its device's state
// (in the device's partition) before its account's.
func TestRuleGroupedByDeviceAcrossPartitions(t *testing.T) {
	p := startPipeline(t)
	shipped, _ := os.ReadFile(p.rulesPath)
	grouped := string(shipped) + `
  - name: shared-device
    type: distinct
    by: device_id
    field: account_id
    window: 1h
    limit: 3
    score: 50
`
	file := filepath.Join(filepath.Dir(p.rulesPath), "grouped.yaml")
	os.WriteFile(file, []byte(grouped), 0o644)
	if out, errOut, err := fraudpipeCLI(t, "rules", "push", "--brokers", p.brokers, file); err != nil {
		t.Fatalf("push: %v\n%s%s", err, out, errOut)
	}
	var lines []string
	for i := range 5 {
		acct := fmt.Sprintf("acct_dev%d", i)
		b, _ := json.Marshal(rules.Payment{ID: fmt.Sprint("d", i), AccountID: acct, Amount: 1000, Currency: "EUR",
			Timestamp: mustTime("2026-11-22T10:00:00Z").Add(time.Duration(i) * time.Minute), DeviceID: "dev_shared", Country: "DE"})
		lines = append(lines, string(b))
	}
	// Unkeyed, so each lands on any partition; one at a time, so the device sees them in time order (from
	// different partitions, a later-stamped payment could reach the device first and see fewer accounts).
	for i, line := range lines {
		kcatProduce(t, p.brokers, "payments", false, line)
		waitFor(t, 30*time.Second, "the payment to be scored", func() bool {
			return metric(p.detMetrics, "fraudpipe_payments_processed_total") >= float64(i+1)
		})
	}
	var got []string
	waitFor(t, 60*time.Second, "two alerts", func() bool {
		got = nil
		for _, a := range decodeAlerts(t, kcatConsume(t, p.brokers, "alerts")) {
			got = append(got, a.PaymentID+" "+a.Rules[0].Name)
		}
		return len(got) >= 2
	})
	slices.Sort(got)
	if fmt.Sprint(got) != "[d3 shared-device d4 shared-device]" {
		t.Fatalf("alerts %v", got)
	}
}
