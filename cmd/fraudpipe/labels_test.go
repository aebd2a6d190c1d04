package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/rules"
)

// rules backtest --labels FILE measures both rulesets against the labelled payments of the replay.
func TestBacktestWithLabelsFromAFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	live := write("live.yaml", "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: 1000, currency: EUR, score: 60 }\n")
	cand := write("cand.yaml", "thresholds: { review: 50, block: 80 }\nrules:\n  - { name: big, type: amount, limit: 3000, currency: EUR, score: 60 }\n")
	payments := write("payments.jsonl", strings.Join([]string{
		`{"id":"p1","account_id":"a1","amount":2000,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z"}`,
		`{"id":"p2","account_id":"a1","amount":5000,"currency":"EUR","timestamp":"2026-11-22T10:01:00Z"}`,
		`{"id":"p3","account_id":"a2","amount":1500,"currency":"EUR","timestamp":"2026-11-22T10:02:00Z"}`,
	}, "\n")+"\n")
	labels := write("labels.jsonl", strings.Join([]string{
		`{"account_id":"a1","payment_id":"p1","verdict":"fraud","source":"customer"}`,
		`{"account_id":"a1","payment_id":"p2","verdict":"fraud","source":"customer"}`,
		`{"account_id":"a2","payment_id":"p3","verdict":"fraud","source":"analyst"}`,
		`{"account_id":"a2","payment_id":"p3","verdict":"legitimate","source":"analyst"}`,
		`not a label`,
	}, "\n")+"\n")

	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	err := run(context.Background(), []string{"rules", "backtest", "--live", live, "--payments", payments, "--labels", labels, "--json", cand})
	w.Close()
	os.Stdout = stdout
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, out)
	}
	var rep rules.BacktestReport
	if err := json.Unmarshal(out, &rep); err != nil || rep.Quality == nil {
		t.Fatalf("report %s: %v", out, err)
	}
	// p3's newest label is legitimate: live flags p1, p2 (fraud) and p3 (legitimate); the candidate only p2.
	l, c := rep.Quality.Live, rep.Quality.Candidate
	if l.Labelled != 3 || l.TruePositives != 2 || l.FalsePositives != 1 || l.FalseNegatives != 0 || l.FraudCaught["EUR"] != 7000 {
		t.Fatalf("live %+v", l)
	}
	if c.TruePositives != 1 || c.FalsePositives != 0 || c.FalseNegatives != 1 || c.Precision != 1 || c.Recall != 0.5 {
		t.Fatalf("candidate %+v", c)
	}
}
