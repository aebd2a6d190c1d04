package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/rules"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCaptured runs the command line args and returns what it printed on stdout.
func runCaptured(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); out <- b }() // read as it comes: a long report would fill the pipe
	stdout := os.Stdout
	os.Stdout = w
	err = run(context.Background(), args)
	w.Close()
	os.Stdout = stdout
	return string(<-out), err
}

// backtestFiles writes two rulesets, three payments and their labels: live alerts p1, p2 (fraud) and p3
// (legitimate, its newer label), the candidate only p2.
func backtestFiles(t *testing.T) (dir, live, cand, payments, labels string) {
	dir = t.TempDir()
	live = writeFile(t, dir, "live.yaml", "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }\n"+
		"  - { name: bigusd, type: amount, limit: 1000, currency: USD, score: 60 }\n")
	cand = writeFile(t, dir, "cand.yaml", "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: 3000, currency: EUR, score: 60 }\n")
	payments = writeFile(t, dir, "payments.jsonl", strings.Join([]string{
		`{"id":"p1","account_id":"a1","amount":2000,"currency":"USD","timestamp":"2026-11-22T10:00:00Z"}`,
		`{"id":"p2","account_id":"a1","amount":5000,"currency":"EUR","timestamp":"2026-11-22T10:01:00Z"}`,
		`{"id":"p3","account_id":"a2","amount":1500,"currency":"EUR","timestamp":"2026-11-22T10:02:00Z"}`,
	}, "\n")+"\n")
	labels = writeFile(t, dir, "labels.jsonl", strings.Join([]string{
		`{"account_id":"a1","payment_id":"p1","verdict":"fraud","source":"customer"}`,
		`{"account_id":"a1","payment_id":"p2","verdict":"fraud","source":"customer"}`,
		`{"account_id":"a2","payment_id":"p3","verdict":"fraud","source":"analyst"}`,
		`{"account_id":"a2","payment_id":"p3","verdict":"legitimate","source":"analyst"}`,
		`not a label`,
	}, "\n")+"\n")
	return dir, live, cand, payments, labels
}

// backtestReport runs rules backtest --json with args and returns its report, which must
// measure quality.
func backtestReport(t *testing.T, args ...string) rules.BacktestReport {
	t.Helper()
	out, err := runCaptured(t, append([]string{"rules", "backtest", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, out)
	}
	var rep rules.BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Quality == nil {
		t.Fatalf("report %s: %v", out, err)
	}
	return rep
}

// rules backtest --labels FILE measures both rulesets against the labelled payments of the replay.
func TestBacktestWithLabelsFromAFile(t *testing.T) {
	_, live, cand, payments, labels := backtestFiles(t)
	rep := backtestReport(t, "--live", live, "--payments", payments, "--labels", labels, cand)
	l, c := rep.Quality.Live, rep.Quality.Candidate
	if l.Labelled != 3 || l.TruePositives != 2 || l.FalsePositives != 1 || l.FalseNegatives != 0 ||
		l.FraudCaught["EUR"] != 5000 || l.FraudCaught["USD"] != 2000 || l.FraudCaughtIn != nil {
		t.Fatalf("live %+v", l)
	}
	if c.TruePositives != 1 || c.FalsePositives != 0 || c.FalseNegatives != 1 || c.Precision != 1 || c.Recall != 0.5 {
		t.Fatalf("candidate %+v", c)
	}
}

// --rates adds the fraud caught in one currency to the report, beside the per-currency figures; a currency
// without a rate refuses the report and names the currency.
func TestBacktestConvertsFraudCaught(t *testing.T) {
	dir, live, cand, payments, labels := backtestFiles(t)
	rates := writeFile(t, dir, "rates.yaml", "currency: EUR\nrates:\n  USD: 0.9215\n")
	args := []string{"rules", "backtest", "--live", live, "--payments", payments, "--labels", labels, "--rates", rates}
	rep := backtestReport(t, append(args[2:], "--currency", "EUR", cand)...)
	// live: 50.00 EUR + 20.00 USD at 0.9215 = 50.00 + 18.43 EUR; the candidate caught p2 only.
	l, c := rep.Quality.Live, rep.Quality.Candidate
	if *l.FraudCaughtIn != (rules.Money{Amount: 6843, Currency: "EUR"}) || l.FraudCaught["USD"] != 2000 || l.FraudCaught["EUR"] != 5000 {
		t.Fatalf("live %+v %+v", l, l.FraudCaughtIn)
	}
	if *c.FraudCaughtIn != (rules.Money{Amount: 5000, Currency: "EUR"}) || rep.Quality.Rules[1].Live.FraudCaughtIn.Amount != 1843 {
		t.Fatalf("candidate %+v, rules %+v", c.FraudCaughtIn, rep.Quality.Rules)
	}
	text, err := runCaptured(t, append(args, cand)...)
	if err != nil || !strings.Contains(text, "50.00 EUR, 20.00 USD = 68.43 EUR") {
		t.Fatalf("text report: %v\n%s", err, text)
	}

	noUSD := writeFile(t, dir, "eur-only.yaml", "currency: EUR\nrates:\n  GBP: 1.17\n")
	out, err := runCaptured(t, "rules", "backtest", "--live", live, "--payments", payments, "--labels", labels, "--rates", noUSD, cand)
	if !errors.Is(err, rules.ErrNoRate) || !strings.Contains(err.Error(), "USD") || out != "" {
		t.Fatalf("a currency without a rate: %v\n%s", err, out)
	}
	_, err = runCaptured(t, append(args, "--currency", "USD", cand)...)
	if err == nil || !strings.Contains(err.Error(), "rates to EUR") {
		t.Fatalf("--currency other than the file's: %v", err)
	}
}

// produce --generate --labels sends, beside the stream, the truth about it to the labels topic; a backtest of the
// shipped rules over the stream, against those labels, then measures them: the rules catch some of the patterns'
// fraud (recall) and most of what they alert is fraud (precision).
func TestAGeneratedStreamWithItsLabelsMeasuresTheRules(t *testing.T) {
	k := testenv.Kafka(t, 2)
	brokers := strings.Join(k.Brokers, ",")
	produce := produceCommand()
	args := []string{"--brokers", brokers, "--partitions", "2", "--generate", "--count", "3000", "--rate", "0",
		"--accounts", "300", "--fraud", "0.02", "--with-customers=false", "--labels", "--start", "2026-11-22T00:00:00Z"}
	if err := produce.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := produce.Exec(ctx, nil); err != nil {
		t.Fatalf("produce: %v", err)
	}
	rep := backtestReport(t, "--brokers", brokers, "--partitions", "2", "--labels", "topic", "--live", "../../examples/rules.yaml",
		"../../examples/rules.yaml")
	q := rep.Quality.Live
	if rep.Payments != 3000 || q.Labelled != 3000 || q.Precision < 0.5 || q.Recall <= 0 || q.TruePositives == 0 {
		t.Fatalf("%d payments replayed, quality %+v", rep.Payments, q)
	}
	t.Logf("generated stream: precision %.2f, recall %.2f, %d/%d/%d", q.Precision, q.Recall, q.TruePositives, q.FalsePositives, q.FalseNegatives)
}
