package cases

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func alert(id string, min int, rules ...string) topics.Alert {
	var fired []topics.Fired
	for _, r := range rules {
		fired = append(fired, topics.Fired{Name: r, Score: 60, Reason: r + " fired"})
	}
	return topics.Alert{ID: "alert_" + id, PaymentID: "pay_" + id, AccountID: "acct_1", Action: topics.ActionReview, Score: 60,
		Rules: fired, Payment: topics.Payment{ID: "pay_" + id, AccountID: "acct_1", Amount: 1000, Currency: "EUR"},
		DetectedAt: t0.Add(time.Duration(min) * time.Minute)}
}

func answer(id string, a topics.Answer) topics.CustomerAnswer {
	return topics.CustomerAnswer{AlertID: "alert_" + id, AccountID: "acct_1", PaymentID: "pay_" + id, Answer: a, AnsweredAt: t0.Add(time.Hour)}
}

func command(id string, typ topics.CaseCommandType, caseID string) topics.CaseCommand {
	return topics.CaseCommand{ID: id, Type: typ, AccountID: "acct_1", CaseID: caseID, By: "alice", At: t0.Add(2 * time.Hour)}
}

func verdict(id, caseID string, v topics.CaseVerdict) topics.CaseCommand {
	c := command(id, topics.CommandVerdict, caseID)
	c.Verdict, c.Note = v, "called the customer"
	return c
}

// step is one input of a lifecycle: an alert, an answer or a command, and what it must produce.
type step struct {
	alert   *topics.Alert
	answer  *topics.CustomerAnswer
	command *topics.CaseCommand
	want    []string // "case:seq:type"
	err     error
}

func al(a topics.Alert) *topics.Alert                   { return &a }
func an(a topics.CustomerAnswer) *topics.CustomerAnswer { return &a }
func cm(c topics.CaseCommand) *topics.CaseCommand       { return &c }

func TestTheCaseLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"an account's alerts share its open case", []step{
			{alert: al(alert("1", 0, "big-ticket")), want: []string{"acct_1:1:1:opened"}},
			{alert: al(alert("2", 1, "rapid-fire")), want: []string{"acct_1:1:2:alert-added"}},
		}},
		{"a redelivered alert changes nothing", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{alert: al(alert("1", 0))},
		}},
		{"a late escalation of the same payment is added", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{alert: func() *topics.Alert { a := alert("1", 5); a.Late, a.Action = true, topics.ActionBlock; return &a }(), want: []string{"acct_1:1:2:alert-added"}},
		}},
		{"an alert after a close opens the next case", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(command("c1", topics.CommandClose, "acct_1:1")), want: []string{"acct_1:1:2:closed"}},
			{alert: al(alert("2", 9)), want: []string{"acct_1:2:1:opened"}},
		}},
		{"a closed case is reopened, and closed again", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(command("c1", topics.CommandClose, "acct_1:1")), want: []string{"acct_1:1:2:closed"}},
			{command: cm(command("c2", topics.CommandReopen, "acct_1:1")), want: []string{"acct_1:1:3:reopened"}},
			{alert: al(alert("2", 9)), want: []string{"acct_1:1:4:alert-added"}},
			{command: cm(command("c3", topics.CommandClose, "acct_1:1")), want: []string{"acct_1:1:5:closed"}},
		}},
		{"a repeated command id does nothing", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(verdict("c1", "acct_1:1", topics.CaseFraud)), want: []string{"acct_1:1:2:verdict"}},
			{command: cm(verdict("c1", "acct_1:1", topics.CaseFraud)), err: ErrRepeated},
		}},
		{"assigning to the assignee records nothing", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(command("c1", topics.CommandAssign, "acct_1:1")), want: []string{"acct_1:1:2:assigned"}},
			{command: cm(command("c2", topics.CommandAssign, "acct_1:1"))},
		}},
		{"commands the case does not allow conflict", []step{
			{command: cm(command("c0", topics.CommandAssign, "acct_1:1")), err: ErrConflict},
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(command("c1", topics.CommandReopen, "acct_1:1")), err: ErrConflict},
			{command: cm(command("c2", topics.CommandClose, "acct_1:1")), want: []string{"acct_1:1:2:closed"}},
			{command: cm(verdict("c3", "acct_1:1", topics.CaseFraud)), err: ErrConflict},
			{command: cm(command("c4", topics.CommandClose, "acct_1:1")), err: ErrConflict},
			{alert: al(alert("2", 9)), want: []string{"acct_1:2:1:opened"}},
			{command: cm(command("c5", topics.CommandReopen, "acct_1:1")), err: ErrConflict},
		}},
		{"a customer's first answer per alert counts", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{answer: an(answer("1", topics.AnswerDenied)), want: []string{"acct_1:1:2:customer-denied"}},
			{answer: an(answer("1", topics.AnswerDenied)), err: ErrRepeated},
			{answer: an(answer("1", topics.AnswerConfirmed)), err: ErrRepeated},
		}},
		{"an answer before its alert waits for it", []step{
			{answer: an(answer("1", topics.AnswerConfirmed))},
			{answer: an(answer("1", topics.AnswerConfirmed)), err: ErrRepeated},
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened", "acct_1:1:2:customer-confirmed"}},
		}},
		{"an answer about a closed case's alert goes on that case", []step{
			{alert: al(alert("1", 0)), want: []string{"acct_1:1:1:opened"}},
			{command: cm(command("c1", topics.CommandClose, "acct_1:1")), want: []string{"acct_1:1:2:closed"}},
			{alert: al(alert("2", 9)), want: []string{"acct_1:2:1:opened"}},
			{answer: an(answer("1", topics.AnswerDenied)), want: []string{"acct_1:1:3:customer-denied"}},
		}},
		{"bad commands and answers are refused", []step{
			{command: cm(verdict("c1", "acct_1:1", "maybe")), err: ErrBadCommand},
			{command: cm(command("c2", "delete", "acct_1:1")), err: ErrBadCommand},
			{command: cm(command("", topics.CommandClose, "acct_1:1")), err: ErrBadCommand},
			{command: func() *topics.CaseCommand { c := command("c3", topics.CommandClose, "acct_1:1"); c.By = ""; return &c }(), err: ErrBadCommand},
			{command: func() *topics.CaseCommand {
				c := verdict("c4", "acct_1:1", topics.CaseFraud)
				c.Note = strings.Repeat("x", maxNoteBytes+1)
				return &c
			}(), err: ErrBadCommand},
			{answer: an(answer("1", "perhaps")), err: ErrBadAnswer},
			{answer: func() *topics.CustomerAnswer { a := answer("1", topics.AnswerDenied); a.AlertID = ""; return &a }(), err: ErrBadAnswer},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Account
			for i, s := range tc.steps {
				var got []topics.CaseEvent
				var err error
				switch {
				case s.alert != nil:
					got = OnAlert(&a, *s.alert, from(i))
				case s.answer != nil:
					got, err = OnAnswer(&a, *s.answer, from(i))
				default:
					got, err = OnCommand(&a, *s.command, from(i))
				}
				if !errors.Is(err, s.err) || (s.err == nil && err != nil) {
					t.Fatalf("step %d: error %v, want %v", i, err, s.err)
				}
				var keys []string
				for _, e := range got {
					keys = append(keys, e.CaseID+":"+itoa(e.Seq)+":"+string(e.Type))
				}
				if !reflect.DeepEqual(keys, s.want) {
					t.Fatalf("step %d: events %v, want %v", i, keys, s.want)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// from names the record of step i: each step is a record of its own.
func from(i int) string { return "t/0/" + itoa(i) }

// The state is a fold of the events: applying a case's events, as the cases topic holds them, to an empty state
// gives the case the deciders built.
func TestReplayingTheEventsRebuildsTheCase(t *testing.T) {
	var a Account
	var events []topics.CaseEvent
	add := func(e []topics.CaseEvent, _ ...error) { events = append(events, e...) }
	add(OnAnswer(&a, answer("2", topics.AnswerDenied), ""))
	add(OnAlert(&a, alert("1", 0, "big-ticket"), ""))
	add(OnAlert(&a, alert("2", 1, "rapid-fire"), ""))
	add(OnCommand(&a, command("c1", topics.CommandAssign, "acct_1:1"), ""))
	add(OnCommand(&a, verdict("c2", "acct_1:1", topics.CaseFraud), ""))
	add(OnCommand(&a, command("c3", topics.CommandClose, "acct_1:1"), ""))
	var replayed Account
	for _, e := range events {
		Apply(&replayed, e)
	}
	if !reflect.DeepEqual(replayed.Current, a.Current) {
		t.Fatalf("replayed %+v\nbuilt    %+v", replayed.Current, a.Current)
	}
	c := a.Current
	if c.Open || c.Assignee != "alice" || c.Verdict == nil || c.Verdict.Verdict != topics.CaseFraud || len(c.Alerts) != 2 ||
		len(c.Answers) != 1 || len(c.History) != 6 || c.History[0].Alert != nil || c.History[0].AlertID != "alert_1" {
		t.Fatalf("case %+v", c)
	}
}

// An account that keeps alerting keeps a bounded state; what falls off is on the cases topic.
func TestAnAccountsStateIsBounded(t *testing.T) {
	var a Account
	for i := range 400 {
		OnAlert(&a, alert(itoa(i+1), i), "")
		if i%50 == 49 {
			if _, err := OnCommand(&a, command("close"+itoa(i), topics.CommandClose, a.Current.ID), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(a.Current.Alerts) > keepAlerts || len(a.Past) != keepPast || len(a.Seen) > keepSeen || a.Opened != 8 {
		t.Fatalf("alerts %d, past %d, seen %d, opened %d", len(a.Current.Alerts), len(a.Past), len(a.Seen), a.Opened)
	}
	if a.Past[keepPast-1].ID != "acct_1:7" || a.Current.ID != "acct_1:8" {
		t.Fatalf("past ends with %s, current %s", a.Past[keepPast-1].ID, a.Current.ID)
	}
}

// A verdict of fraud or legitimate labels each payment of the case once; unsure labels nothing.
func TestVerdictsLabelTheCasesPayments(t *testing.T) {
	var a Account
	OnAlert(&a, alert("1", 0), "")
	OnAlert(&a, alert("2", 1), "")
	late := alert("1", 5)
	late.Late = true
	late.Action = topics.ActionBlock
	OnAlert(&a, late, "")
	for _, tc := range []struct {
		v    topics.CaseVerdict
		want string
	}{{topics.CaseUnsure, ""}, {topics.CaseFraud, "pay_1=fraud pay_2=fraud"}, {topics.CaseLegitimate, "pay_1=legitimate pay_2=legitimate"}} {
		ev, err := OnCommand(&a, verdict("v"+string(tc.v), a.Current.ID, tc.v), "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range Labels(a.Current, ev[0]) {
			if l.Source != "analyst" || l.AccountID != "acct_1" {
				t.Fatalf("label %+v", l)
			}
			got = append(got, l.PaymentID+"="+string(l.Verdict))
		}
		if strings.Join(got, " ") != tc.want {
			t.Fatalf("%s: labels %v, want %q", tc.v, got, tc.want)
		}
	}
}

// Rules are scored on settled cases: the analyst's verdict first, else the customer's answer per alert.
func TestRuleQualityOverTheCases(t *testing.T) {
	var fraudCase, answered, open Account
	OnAlert(&fraudCase, alert("1", 0, "big-ticket", "rapid-fire"), "")
	OnCommand(&fraudCase, verdict("c1", "acct_1:1", topics.CaseFraud), "")
	OnAlert(&answered, alert("2", 0, "big-ticket"), "")
	OnAlert(&answered, alert("3", 1, "globetrotter"), "")
	OnAnswer(&answered, answer("2", topics.AnswerConfirmed), "")
	OnAlert(&open, alert("4", 0, "globetrotter"), "")
	var got []string
	for _, q := range Quality([]*Account{&fraudCase, &answered, &open}) {
		got = append(got, fmt.Sprintf("%s:%d/%d/%.2f", q.Rule, q.TruePositives, q.FalsePositives, q.Precision))
	}
	want := []string{"big-ticket:1/1/0.50", "rapid-fire:1/0/1.00"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("quality %v, want %v", got, want)
	}
}

// A record delivered again after a crash (the same topic, partition and offset) gives back the events it caused,
// as they were first written, so that events the crash kept from Kafka are written after all; the same input from
// another record (a double click, a producer's retry) gives nothing.
func TestARedeliveredRecordReplaysItsEvents(t *testing.T) {
	var a Account
	first := map[string][]topics.CaseEvent{}
	first["answers/0/1"], _ = OnAnswer(&a, answer("1", topics.AnswerDenied), "answers/0/1")
	first["alerts/0/7"] = OnAlert(&a, alert("1", 0, "big-ticket"), "alerts/0/7")
	late := alert("1", 3, "big-ticket")
	late.Late, late.Action = true, topics.ActionBlock
	first["alerts/0/8"] = OnAlert(&a, late, "alerts/0/8")
	first["commands/0/3"], _ = OnCommand(&a, verdict("c1", "acct_1:1", topics.CaseFraud), "commands/0/3")
	if len(first["alerts/0/7"]) != 2 || len(first["alerts/0/8"]) != 1 || len(first["commands/0/3"]) != 1 {
		t.Fatalf("first events %v", first)
	}
	for from, want := range first {
		got, ok := a.Replay(from)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("replay of %s:\n got %+v\nwant %+v", from, got, want)
		}
	}
	if events, err := OnCommand(&a, verdict("c1", "acct_1:1", topics.CaseFraud), "commands/0/4"); events != nil || !errors.Is(err, ErrRepeated) {
		t.Fatalf("the same command from another record: %v %v", events, err)
	}
	if _, ok := a.Replay("commands/0/4"); ok {
		t.Fatal("a repeat from another record was taken for a redelivery")
	}
	if _, ok := a.Replay("alerts/0/99"); ok {
		t.Fatal("an unknown record was taken for a redelivery")
	}
}

func TestTheCaseShowsEachPaymentOnceNewestFirst(t *testing.T) {
	a := &Account{}
	recent := func(id string, min int) topics.RecentPayment {
		return topics.RecentPayment{Payment: topics.Payment{ID: id, AccountID: "acct_1", Timestamp: t0.Add(time.Duration(min) * time.Minute)}}
	}
	a1, a2 := alert("1", 10), alert("2", 20)
	a1.Payment.Timestamp, a2.Payment.Timestamp = t0.Add(10*time.Minute), t0.Add(20*time.Minute)
	a1.Recent = []topics.RecentPayment{recent("pay_0", 5)}
	a2.Recent = []topics.RecentPayment{recent("pay_1", 10), recent("pay_0", 5), recent("pay_x", 15)} // pay_1 is a1's payment
	OnAlert(a, a1, "")
	OnAlert(a, a2, "")
	var ids []string
	for _, p := range a.Current.Payments() {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "pay_2,pay_x,pay_1,pay_0" {
		t.Fatalf("payments %v", ids)
	}
	if a.Current.Alerts[0].Recent != nil || len(a.Current.Alerts[1].Recent) != 3 {
		t.Fatal("only the newest alert keeps the recent payments")
	}
}
