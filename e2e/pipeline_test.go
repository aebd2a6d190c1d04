package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// pipeline is a broker plus a detector and a notifier, each its own process.
type pipeline struct {
	*cluster
	rulesPath   string
	detector    *proc
	notifier    *proc
	detMetrics  string
	detStateDir string
}

// copyRules copies the shipped rules file and its list files into dir, where a test may edit them.
func copyRules(t *testing.T, dir string) string {
	t.Helper()
	for _, f := range []string{"rules.yaml", "lists/blocked-merchants.txt", "lists/trusted-devices.txt"} {
		data, err := os.ReadFile(filepath.Join("../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "rules.yaml")
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	return startPipelineWith(t, func(dir string) string { return copyRules(t, dir) })
}

// startPipelineWith starts a pipeline whose detector scores with the rules file that writeRules writes into dir.
func startPipelineWith(t *testing.T, writeRules func(dir string) string) *pipeline {
	t.Helper()
	dir := t.TempDir()
	c := startBroker(t, filepath.Join(dir, "broker"))
	p := &pipeline{cluster: c, rulesPath: writeRules(dir), detStateDir: filepath.Join(dir, "detector-state")}
	p.startDetector(t)
	p.notifier = start(t, "notifier", "notifier", "--brokers", c.brokers, "--metrics-addr", "127.0.0.1:0")
	p.notifier.waitStderr(30*time.Second, "notifier started")
	return p
}

func (p *pipeline) startDetector(t *testing.T) {
	t.Helper()
	p.detector = start(t, "detector", "detector", "--brokers", p.brokers, "--rules", p.rulesPath,
		"--state-dir", p.detStateDir, "--metrics-addr", "127.0.0.1:0")
	p.detector.waitStderr(30*time.Second, "detector started")
	p.detMetrics = p.detector.metricsAddr()
}

// alertLines are the notifier's log lines, one per alert.
func (p *pipeline) alertLines() []string { return lines(p.notifier.Stdout(), `msg="ALERT `) }

func decodeAlerts(t *testing.T, recs []record) []topics.Alert {
	t.Helper()
	var out []topics.Alert
	for _, r := range recs {
		var a topics.Alert
		if err := json.Unmarshal([]byte(r.Value), &a); err != nil {
			t.Fatalf("alert is not JSON: %v\n%s", err, r.Value)
		}
		if r.Key != a.AccountID {
			t.Fatalf("alert %s keyed %q, want the account id %q", a.ID, r.Key, a.AccountID)
		}
		out = append(out, a)
	}
	return out
}

// summary is what a user relies on in an alert: which payment, what to do, and why.
func summary(a topics.Alert) string {
	var rs []string
	for _, f := range a.Rules {
		rs = append(rs, fmt.Sprintf("%s+%d(%s)", f.Name, f.Score, f.Reason))
	}
	return fmt.Sprintf("%s %s %s %d %s", a.AccountID, a.PaymentID, a.Action, a.Score, strings.Join(rs, ","))
}

func pay(id, account string, amount int64, cur, ts, country string) string {
	b, _ := json.Marshal(rules.Payment{ID: id, AccountID: account, Amount: amount, Currency: cur,
		Timestamp: mustTime(ts), Country: country, MerchantID: "m_1", CardID: "card_" + account})
	return string(b)
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPaymentsToAlertsToNotifierLog(t *testing.T) {
	p := startPipeline(t)

	// Accounts with several payments are keyed, so librdkafka keeps their order (it partitions by CRC32, not
	// goka's FNV-1a: the detector must re-route them). Single payments and the invalid lines have no key.
	keyed := []string{}
	for i, ts := range []string{"10:00", "10:01", "10:02", "10:03", "10:04"} {
		keyed = append(keyed, "acct_B|"+pay(fmt.Sprint("b", i+1), "acct_B", 1000, "EUR", "2026-11-22T"+ts+":00Z", "DE"))
	}
	for i, c := range []string{"DE", "FR", "US"} {
		keyed = append(keyed, "acct_C|"+pay(fmt.Sprint("c", i+1), "acct_C", 2000, "EUR", fmt.Sprintf("2026-11-22T10:%d0:00Z", i), c))
	}
	for i := range 3 {
		keyed = append(keyed, "acct_D|"+pay(fmt.Sprint("d", i+1), "acct_D", 400000, "EUR", fmt.Sprintf("2026-11-22T10:%d0:00Z", 2*i), "DE"))
	}
	kcatProduce(t, p.brokers, "payments", true, keyed...)
	a1 := pay("a1", "acct_A", 600000, "EUR", "2026-11-22T10:00:00Z", "DE")
	kcatProduce(t, p.brokers, "payments", false,
		a1, a1, // a producer retry: the same payment twice
		pay("e1", "acct_E", 1500, "EUR", "2026-11-22T10:00:00Z", "DE"),
		pay("f1", "acct_F", 700000, "USD", "2026-11-22T10:00:00Z", "US"),
		`{"id":"x1","account_id":"acct_X","amount":-5,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`,
		`this is not json`,
		`{"id":"x3","account_id":"acct_X","amount":100,"currency":"EURO","timestamp":"2026-11-22T10:00:00Z"}`,
		// Poison: wrong types, and a record far larger than any payment.
		`{"id":4,"account_id":"acct_X","amount":100,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`,
		`{"id":"x5","account_id":"acct_X","amount":100,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","ip":"`+strings.Repeat("9", 100_000)+`"}`,
	)

	waitFor(t, 60*time.Second, "all payments to be processed", func() bool {
		return metric(p.detMetrics, "fraudpipe_payments_processed_total") == 14 &&
			metric(p.detMetrics, "fraudpipe_payments_duplicate_total") == 1 &&
			metric(p.detMetrics, "fraudpipe_payments_rejected_total") == 5
	})
	want := []string{
		"acct_A a1 review 60 big-ticket+60(amount 6,000.00 EUR > limit 5,000.00 EUR)",
		"acct_B b5 review 50 rapid-fire+50(5 payments in 5m > limit 4)",
		"acct_C c3 block 80 globetrotter+80(3 distinct country values in 30m > limit 2)",
		"acct_D d3 review 50 spend-surge+50(total 12,000.00 EUR in 1h > limit 10,000.00 EUR)",
		"acct_F f1 review 60 big-ticket+60(amount 6,440.00 EUR > limit 5,000.00 EUR)", // 7,000 USD at 0.92
	}
	waitFor(t, 30*time.Second, "five alert lines in the notifier log", func() bool { return len(p.alertLines()) >= len(want) })

	alerts := decodeAlerts(t, kcatConsume(t, p.brokers, "alerts"))
	var got []string
	for _, a := range alerts {
		got = append(got, summary(a))
		if a.ID != topics.AlertID(a.AccountID, a.PaymentID) || a.RulesetDigest == "" || a.DetectedAt.IsZero() {
			t.Errorf("alert %+v lacks its stable id, ruleset version or detection time", a)
		}
	}
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("alerts on the topic:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	logLines := p.alertLines()
	if len(logLines) != len(want) {
		t.Fatalf("notifier logged %d alert lines, want %d:\n%s", len(logLines), len(want), strings.Join(logLines, "\n"))
	}
	for _, a := range alerts {
		line := lines(strings.Join(logLines, "\n"), "alert="+a.ID)
		if len(line) != 1 {
			t.Fatalf("alert %s appears %d times in the notifier log", a.ID, len(line))
		}
		for _, part := range []string{"account=" + a.AccountID, "payment=" + a.PaymentID,
			fmt.Sprintf("amount=%q", rules.FormatAmount(a.Payment.Amount, a.Payment.Currency)),
			fmt.Sprintf("score=%d", a.Score), `msg="ALERT ` + string(a.Action) + `"`, a.Rules[0].Reason} {
			if !strings.Contains(line[0], part) {
				t.Errorf("log line lacks %s:\n%s", part, line[0])
			}
		}
	}

	dlq := kcatConsume(t, p.brokers, "payments.dlq")
	var reasons []string
	for _, r := range dlq {
		reasons = append(reasons, r.Headers[topics.HeaderReason])
		if r.Headers[topics.HeaderSourceTopic] != "payments" || r.Headers[topics.HeaderSourceOffset] == "" {
			t.Errorf("dead letter lacks its source: %v", r.Headers)
		}
		if !strings.Contains(r.Value, `"x1"`) && !strings.Contains(r.Value, `"x3"`) && !strings.Contains(r.Value, `"id":4`) &&
			!strings.Contains(r.Value, `"x5"`) && r.Value != "this is not json" {
			t.Errorf("dead letter does not carry the original bytes: %q", r.Value)
		}
	}
	slices.Sort(reasons)
	if fmt.Sprint(reasons) != "[bad_amount bad_currency bad_type not_json too_large]" {
		t.Fatalf("dead-letter reasons %v", reasons)
	}
}

func TestRulesFileEditedWhileRunning(t *testing.T) {
	p := startPipeline(t)
	send := func(id string) {
		kcatProduce(t, p.brokers, "payments", false, pay(id, "acct_"+id, 200000, "EUR", "2026-11-22T10:00:00Z", "DE"))
	}
	processed := 0.0
	sendAndWait := func(id string) {
		t.Helper()
		send(id)
		processed++
		waitFor(t, 30*time.Second, "payment "+id+" to be processed", func() bool {
			return metric(p.detMetrics, "fraudpipe_payments_processed_total") == processed
		})
	}

	sendAndWait("p1") // 2,000.00 EUR: under the shipped big-ticket limit of 5,000.00 EUR

	shipped, _ := os.ReadFile(p.rulesPath)
	lowered := strings.Replace(string(shipped), "limit: 500000 ", "limit: 100000 ", 1)
	if lowered == string(shipped) {
		t.Fatal("the shipped rules changed; update this test's edit")
	}
	if err := os.WriteFile(p.rulesPath, []byte(lowered), 0o644); err != nil {
		t.Fatal(err)
	}
	p.detector.waitStderr(20*time.Second, "rules reloaded")
	if !strings.Contains(p.detector.Stderr(), `changed="[big-ticket: limit 500000 → 100000]"`) ||
		!strings.Contains(p.detector.Stderr(), `msg="rules file published" version=2`) {
		t.Fatalf("reload does not say what changed and which version it published:\n%s", p.detector.Stderr())
	}
	sendAndWait("p2") // now above the limit

	// An invalid save is rejected with file, line, rule and field; the lowered limit stays in force.
	broken := strings.Replace(lowered, "limit: 100000 ", "limit: lots ", 1)
	if err := os.WriteFile(p.rulesPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	p.detector.waitStderr(20*time.Second, "rules file rejected")
	wantErr := fmt.Sprintf(`%s:%d: rule \"big-ticket\": field \"limit\": \"lots\" is not a whole number`,
		p.rulesPath, lineOf(broken, "limit: lots"))
	if !strings.Contains(p.detector.Stderr(), wantErr) {
		t.Fatalf("rejection does not name file, line, rule and field; want %s in\n%s", wantErr, p.detector.Stderr())
	}
	sendAndWait("p3")

	waitFor(t, 30*time.Second, "two alert lines", func() bool { return len(p.alertLines()) >= 2 })
	var got []string
	for _, a := range decodeAlerts(t, kcatConsume(t, p.brokers, "alerts")) {
		got = append(got, a.PaymentID+" "+a.Rules[0].Reason)
		if a.RulesetVersion != 2 {
			t.Errorf("alert for %s carries ruleset version %d, want 2 (the saved file)", a.PaymentID, a.RulesetVersion)
		}
	}
	slices.Sort(got)
	want := "[p2 amount 2,000.00 EUR > limit 1,000.00 EUR p3 amount 2,000.00 EUR > limit 1,000.00 EUR]"
	if fmt.Sprint(got) != want {
		t.Fatalf("alerts %v, want %s", got, want)
	}
}

func lineOf(s, substr string) int {
	return strings.Count(s[:strings.Index(s, substr)], "\n") + 1
}

func TestProducerReportsRejectedLines(t *testing.T) {
	c := startBroker(t, t.TempDir())
	file := filepath.Join(t.TempDir(), "payments.jsonl")
	os.WriteFile(file, []byte(pay("ok1", "acct_1", 100, "EUR", "2026-11-22T10:00:00Z", "DE")+"\n"+
		`{"id":"bad","account_id":"acct_1","amount":"ten","currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`+"\n\n"+
		pay("ok2", "acct_1", 100, "EUR", "2026-11-22T10:01:00Z", "DE")+"\n"), 0o644)
	out, err := exec.Command(binary, "produce", "--brokers", c.brokers, "--file", file).CombinedOutput()
	if err == nil {
		t.Fatalf("a file with a rejected line must exit non-zero:\n%s", out)
	}
	for _, want := range []string{
		file + `:2: rejected: invalid payment (bad_amount): field "amount"`,
		"sent 2 payments to payments (2 acknowledged), rejected 1 lines",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if n := len(kcatConsume(t, c.brokers, "payments")); n != 2 {
		t.Fatalf("payments topic holds %d records, want the 2 valid ones", n)
	}
}
