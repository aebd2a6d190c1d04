package notifier_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraudpipe/fraudpipe/logging"
	"github.com/fraudpipe/fraudpipe/notifier"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func TestOneReadableLinePerAlertAndNoDuplicates(t *testing.T) {
	var out syncBuffer
	alertLog, _ := logging.New(&out, "text", slog.LevelInfo)
	m := notifier.NewMetrics(nil)
	tt := tester.New(t)
	proc, err := notifier.New(nil, notifier.Config{
		Channels: []notifier.Channel{notifier.LogChannel{Log: alertLog}}, Metrics: m, Log: slog.Default(),
	}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	p := rules.Payment{ID: "pay_123", AccountID: "acct_42", Amount: 125050, Currency: "EUR",
		Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), CardID: "4111111111111111"}
	a := topics.NewAlert(p, rules.Decision{Score: 100, Action: rules.ActionBlock, Fired: []rules.Fired{
		{Name: "big-ticket", Score: 60, Reason: "amount 1,250.50 EUR > limit 1,000.00 EUR"},
		{Name: "globetrotter", Score: 80, Reason: "3 distinct country values in 30m > limit 2"},
	}}, "v1", time.Now())
	b, _ := topics.AlertCodec{}.Encode(a)
	tt.Consume(string(topics.Alerts), "acct_42", b)
	tt.Consume(string(topics.Alerts), "acct_42", b) // re-emitted by a detector after a crash
	tt.Consume(string(topics.Alerts), "acct_42", []byte("{not an alert"))

	lines := out.Lines()
	if len(lines) != 1 {
		t.Fatalf("want exactly one line, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, want := range []string{
		`level=WARN msg="ALERT block"`, "account=acct_42", "payment=pay_123", `amount="1,250.50 EUR"`, "score=100",
		`rules="big-ticket +60: amount 1,250.50 EUR > limit 1,000.00 EUR; globetrotter +80: 3 distinct country values in 30m > limit 2"`,
		"alert=" + a.ID,
	} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line lacks %s:\n%s", want, lines[0])
		}
	}
	if got := testutil.ToFloat64(m.Duplicates); got != 1 {
		t.Fatalf("duplicates %v", got)
	}
	if got := testutil.ToFloat64(m.Malformed); got != 1 {
		t.Fatalf("malformed %v", got)
	}
}
