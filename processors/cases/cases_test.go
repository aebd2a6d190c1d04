package cases_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	domain "github.com/fraudpipe/fraudpipe/cases"
	"github.com/fraudpipe/fraudpipe/processors/cases"
	"github.com/fraudpipe/fraudpipe/topics"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

type env struct {
	tt                  *tester.Tester
	events, dlq, labels *tester.QueueTracker
	m                   *cases.Metrics
	reader              cases.Reader
}

func run(t *testing.T) *env {
	t.Helper()
	tt := tester.New(t)
	m := cases.NewMetrics(nil)
	p, err := cases.New(nil, cases.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	v, err := cases.NewView(nil, goka.WithViewTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- p.Run(ctx) }()
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("processor or view: %v", err)
			}
		}
	})
	return &env{tt: tt, events: tt.NewQueueTracker(topics.Cases), dlq: tt.NewQueueTracker(topics.CasesDLQ),
		labels: tt.NewQueueTracker(topics.Labels), m: m, reader: cases.Reader{View: v}}
}

func alertJSON(id string, minute int, rules ...string) []byte {
	var fired []topics.Fired
	for _, r := range rules {
		fired = append(fired, topics.Fired{Name: r, Score: 60})
	}
	b, _ := json.Marshal(topics.Alert{ID: "alert_" + id, PaymentID: "pay_" + id, AccountID: "acct_1", Action: topics.ActionBlock,
		Rules: fired, Payment: topics.Payment{ID: "pay_" + id, Amount: 5000, Currency: "EUR"}, DetectedAt: t0.Add(time.Duration(minute) * time.Minute)})
	return b
}

func answerJSON(id string, a topics.Answer) []byte {
	b, _ := json.Marshal(topics.CustomerAnswer{AlertID: "alert_" + id, AccountID: "acct_1", PaymentID: "pay_" + id, Answer: a,
		Channel: "web", AnsweredAt: t0.Add(10 * time.Minute)})
	return b
}

func commandJSON(id string, typ topics.CaseCommandType, caseID string, v topics.CaseVerdict) []byte {
	b, _ := json.Marshal(topics.CaseCommand{ID: id, Type: typ, AccountID: "acct_1", CaseID: caseID, By: "alice", At: t0.Add(time.Hour),
		Verdict: v, Note: "checked"})
	return b
}

// drain returns the events on the cases topic as "key=type", checking that each key is its event's.
func drain(t *testing.T, q *tester.QueueTracker) []string {
	t.Helper()
	var out []string
	for {
		key, v, ok := q.Next()
		if !ok {
			return out
		}
		e := v.(*topics.CaseEvent)
		if key != topics.CaseEventKey(e.CaseID, e.Seq) || e.AccountID != "acct_1" {
			t.Fatalf("event %+v keyed %q", e, key)
		}
		out = append(out, key+"="+string(e.Type))
	}
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// Repeated alerts and a repeated command (a double click, a redelivery) give each event once; the fraud verdict
// labels both payments of the case once, source analyst; the view shows the case as the events left it.
func TestRepeatedAlertsAndCommandsCountOnce(t *testing.T) {
	e := run(t)
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0, "big-ticket"))
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0, "big-ticket"))
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("2", 1, "rapid-fire"))
	for range 2 {
		e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("cmd-assign", topics.CommandAssign, "acct_1:1", ""))
		e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("cmd-verdict", topics.CommandVerdict, "acct_1:1", topics.CaseFraud))
	}
	expect(t, drain(t, e.events), "acct_1:1/00000001=opened", "acct_1:1/00000002=alert-added", "acct_1:1/00000003=assigned",
		"acct_1:1/00000004=verdict")
	var labels []string
	for {
		key, v, ok := e.labels.Next()
		if !ok {
			break
		}
		l := v.(*topics.Label)
		labels = append(labels, key+"="+string(l.Verdict)+"/"+l.Source)
	}
	expect(t, labels, "acct_1/pay_1=fraud/analyst", "acct_1/pay_2=fraud/analyst")
	if got := testutil.ToFloat64(e.m.Verdicts.WithLabelValues("big-ticket", "fraud")); got != 1 {
		t.Fatalf("verdicts for big-ticket: %v", got)
	}
	if got := testutil.ToFloat64(e.m.Commands.WithLabelValues("verdict", "repeated")); got != 1 {
		t.Fatalf("repeated verdict commands: %v", got)
	}
	a, err := e.reader.Account("acct_1")
	if err != nil || a == nil || a.Current.Assignee != "alice" || a.Current.Verdict.Verdict != topics.CaseFraud || len(a.Current.History) != 4 {
		t.Fatalf("the view: %+v %v", a, err)
	}
}

// A customer's answer that overtakes its alert waits in the state and lands on the case the alert opens;
// the answer's latency is measured from the alert.
func TestAnAnswerBeforeItsAlert(t *testing.T) {
	e := run(t)
	e.tt.Consume(topics.CustomerAnswers, "acct_1", answerJSON("1", topics.AnswerDenied))
	expect(t, drain(t, e.events))
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0))
	e.tt.Consume(topics.CustomerAnswers, "acct_1", answerJSON("1", topics.AnswerConfirmed))
	expect(t, drain(t, e.events), "acct_1:1/00000001=opened", "acct_1:1/00000002=customer-denied")
	if n := testutil.CollectAndCount(e.m.AnswerLatency); n != 1 {
		t.Fatalf("latency series %d", n)
	}
	if _, _, ok := e.labels.Next(); ok {
		t.Fatal("a customer's answer was labelled by the cases group (the confirmations saga labels answers)")
	}
}

// A closed case takes no verdict; the next alert opens a new case; the new case can be closed and reopened; the
// gauges count the open cases from the view.
func TestClosedCasesAndReopening(t *testing.T) {
	e := run(t)
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c1", topics.CommandClose, "acct_1:1", ""))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c2", topics.CommandVerdict, "acct_1:1", topics.CaseFraud))
	gauges := cases.OpenCases{Each: e.reader.Each, Now: func() time.Time { return t0.Add(time.Hour) }}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(gauges)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fraudpipe_cases_open Open cases, from the cases table.
# TYPE fraudpipe_cases_open gauge
fraudpipe_cases_open 0
`), "fraudpipe_cases_open"); err != nil {
		t.Fatal(err)
	}
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("2", 30))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c3", topics.CommandClose, "acct_1:2", ""))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c4", topics.CommandReopen, "acct_1:2", ""))
	expect(t, drain(t, e.events), "acct_1:1/00000001=opened", "acct_1:1/00000002=closed", "acct_1:2/00000001=opened",
		"acct_1:2/00000002=closed", "acct_1:2/00000003=reopened")
	if got := testutil.ToFloat64(e.m.Commands.WithLabelValues("verdict", "conflict")); got != 1 {
		t.Fatalf("conflicting verdicts: %v", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fraudpipe_cases_oldest_open_age_seconds Age of the oldest open case (from its first alert); 0 without open cases.
# TYPE fraudpipe_cases_oldest_open_age_seconds gauge
fraudpipe_cases_oldest_open_age_seconds 1800
# HELP fraudpipe_cases_open Open cases, from the cases table.
# TYPE fraudpipe_cases_open gauge
fraudpipe_cases_open 1
`)); err != nil {
		t.Fatal(err)
	}
	a, _ := e.reader.Account("acct_1")
	if len(a.Past) != 1 || a.Past[0].Open || !a.Current.Open {
		t.Fatalf("cases %+v", a)
	}
}

// Records that are not JSON, belong to another account than their key, or are not valid commands go to the
// dead-letter topic with the reason; the group goes on.
func TestBadRecordsAreDeadLettered(t *testing.T) {
	e := run(t)
	e.tt.Consume(topics.Alerts, "acct_1", []byte("{not json"))
	e.tt.Consume(topics.Alerts, "acct_2", alertJSON("1", 0))
	e.tt.Consume(topics.CustomerAnswers, "acct_1", answerJSON("1", "perhaps"))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c1", topics.CommandVerdict, "acct_1:1", "maybe"))
	e.tt.Consume(topics.CaseCommands, "acct_1", nil)
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0))
	want := []string{topics.ReasonNotAlert, topics.ReasonNotAlert, topics.ReasonBadAnswer, topics.ReasonBadCaseCommand, topics.ReasonNullValue}
	for i, w := range want {
		h, _, _, ok := e.dlq.NextWithHeaders()
		if !ok {
			t.Fatalf("dead letter %d missing", i)
		}
		if r := string(h[topics.HeaderReason]); r != w {
			t.Fatalf("dead letter %d: reason %q, want %q", i, r, w)
		}
	}
	expect(t, drain(t, e.events), "acct_1:1/00000001=opened")
}

// After a crash goka may have kept the state that remembers a record whose events never reached Kafka; when that
// very record comes again, its events and labels are written again, the same records under the same keys.
func TestARedeliveredRecordWritesItsEventsAgain(t *testing.T) {
	e := run(t)
	e.tt.Consume(topics.Alerts, "acct_1", alertJSON("1", 0, "big-ticket"))
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c1", topics.CommandVerdict, "acct_1:1", topics.CaseFraud))
	first := drain(t, e.events)
	expect(t, first, "acct_1:1/00000001=opened", "acct_1:1/00000002=verdict")
	for {
		if _, _, ok := e.labels.Next(); !ok {
			break
		}
	}
	// The crash: the state remembers the verdict as delivered by the record the tester hands out next.
	st := e.tt.TableValue(cases.Table, "acct_1").(*domain.Account)
	last := &st.Seen[len(st.Seen)-1]
	offset, err := strconv.Atoi(strings.TrimPrefix(last.From, topics.CaseCommands+"/0/"))
	if err != nil {
		t.Fatalf("the verdict was delivered by %q: %v", last.From, err)
	}
	last.From = topics.CaseCommands + "/0/" + strconv.Itoa(offset+1)
	e.tt.SetTableValue(cases.Table, "acct_1", st)
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c1", topics.CommandVerdict, "acct_1:1", topics.CaseFraud))
	expect(t, drain(t, e.events), "acct_1:1/00000002=verdict")
	if key, _, ok := e.labels.Next(); !ok || key != "acct_1/pay_1" {
		t.Fatalf("the verdict's label was not written again: %q %v", key, ok)
	}
	// The same command from yet another record is a repeat: nothing.
	e.tt.Consume(topics.CaseCommands, "acct_1", commandJSON("c1", topics.CommandVerdict, "acct_1:1", topics.CaseFraud))
	expect(t, drain(t, e.events))
}
