// Package cases is the case lifecycle as pure logic: an account's case state, the events that change it (Apply),
// and the events an alert, a customer's answer or an analyst's command call for (OnAlert, OnAnswer, OnCommand).
// No goka, no Kafka, no clock: every time comes from the record that caused the event, so replaying the same
// records gives the same events. processors/cases translates between goka and this package.
package cases

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Bounds on an account's state, the cases group's table value: an account that keeps alerting (a bot) must not
// grow its value without limit. What falls off stays on the cases topic.
const (
	keepPast     = 5   // closed cases kept besides the current one
	keepAlerts   = 50  // alerts per case, the newest
	keepHistory  = 200 // events per case in the table, the newest
	keepSeen     = 256 // alert delivery ids and command ids remembered for idempotence
	keepPending  = 32  // answers waiting for their alert
	maxNoteBytes = 2000
)

// Who caused events that are no analyst's.
const (
	ByPipeline = "pipeline"
	ByCustomer = "customer"
)

// Errors of the deciders. Only ErrBadCommand is the record's fault (it is dead-lettered); the others are normal
// outcomes of concurrent work and at-least-once delivery.
var (
	ErrBadCommand = errors.New("case command")
	ErrBadAnswer  = errors.New("customer answer")
	// ErrRepeated is a command id, alert or answer seen before: nothing happens again.
	ErrRepeated = errors.New("repeated")
	// ErrConflict is a command the case's state does not allow any more (two analysts acted at once, or the
	// case was closed or superseded meanwhile).
	ErrConflict = errors.New("conflicts with the case's state")
)

// Account is an account's cases: the current one (open, or closed until the next alert opens another), the most
// recent closed ones, and what makes records count once.
type Account struct {
	AccountID string `json:"account_id"`
	// Opened counts the account's cases; a case's number is its position in that count.
	Opened  int    `json:"opened"`
	Current *Case  `json:"current,omitempty"`
	Past    []Case `json:"past,omitempty"` // oldest first
	// Seen holds what was handled, with the record that delivered it: alerts by delivery id, commands by id and
	// answers by alert, so that each counts once, and a record delivered again after a crash is recognised.
	Seen []Delivery `json:"seen,omitempty"`
	// Pending holds answers to alerts no case holds yet (the answer overtook its alert).
	Pending []topics.CustomerAnswer `json:"pending,omitempty"`
}

// Delivery is an input the account's cases have handled ("alert:<delivery id>", "command:<id>",
// "answer:<alert id>") and the record that first delivered it (topic/partition/offset).
type Delivery struct {
	ID   string `json:"id"`
	From string `json:"from,omitempty"`
}

// Case groups an account's alerts from the first after a quiet period until an analyst closes it.
type Case struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Number    int       `json:"number"`
	Open      bool      `json:"open"`
	OpenedAt  time.Time `json:"opened_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Assignee  string    `json:"assignee,omitempty"`
	// Alerts are the case's alerts, oldest first, with their payments and the rules that fired.
	Alerts  []topics.Alert `json:"alerts"`
	Answers []Answer       `json:"answers,omitempty"`
	Verdict *Verdict       `json:"verdict,omitempty"`
	// History is the audit trail, oldest first; its events carry alert ids, not alerts.
	History []topics.CaseEvent `json:"history"`
	// Seq is the sequence number of the case's newest event.
	Seq int `json:"seq"`
}

// Answer is a customer's first answer about one of the case's alerts.
type Answer struct {
	AlertID   string        `json:"alert_id"`
	PaymentID string        `json:"payment_id"`
	Answer    topics.Answer `json:"answer"`
	At        time.Time     `json:"at"`
}

// Verdict is the newest analyst verdict on a case.
type Verdict struct {
	Verdict topics.CaseVerdict `json:"verdict"`
	Note    string             `json:"note,omitempty"`
	By      string             `json:"by"`
	At      time.Time          `json:"at"`
}

// CaseID names an account's n-th case.
func CaseID(account string, n int) string { return fmt.Sprintf("%s:%d", account, n) }

// Case returns the account's case with id, nil if the state no longer (or never) held it.
func (a *Account) Case(id string) *Case {
	if a.Current != nil && a.Current.ID == id {
		return a.Current
	}
	for i := range a.Past {
		if a.Past[i].ID == id {
			return &a.Past[i]
		}
	}
	return nil
}

// All returns the account's cases, the current one first.
func (a *Account) All() []*Case {
	var out []*Case
	if a.Current != nil {
		out = append(out, a.Current)
	}
	for i := len(a.Past) - 1; i >= 0; i-- {
		out = append(out, &a.Past[i])
	}
	return out
}

// Apply changes the state by one event. It is the only place state changes: the deciders apply the events they
// return, and replaying a case's events from the cases topic rebuilds it.
func Apply(a *Account, e topics.CaseEvent) {
	a.AccountID = e.AccountID
	if e.Type == topics.CaseOpened {
		if a.Current != nil {
			a.Past = append(a.Past, *a.Current)
			if len(a.Past) > keepPast {
				a.Past = slices.Delete(a.Past, 0, len(a.Past)-keepPast)
			}
		}
		a.Opened++
		a.Current = &Case{ID: e.CaseID, AccountID: e.AccountID, Number: a.Opened, Open: true, OpenedAt: e.At}
	}
	c := a.Case(e.CaseID)
	if c == nil {
		return // a case the state has let go of
	}
	switch e.Type {
	case topics.CaseOpened, topics.CaseAlertAdded:
		if e.Alert != nil {
			// Only the newest alert keeps the account's recent payments (Alert.Recent): they overlap from one
			// alert to the next, and the table would otherwise hold each payment once per alert.
			for i := range c.Alerts {
				c.Alerts[i].Recent = nil
			}
			c.Alerts = append(c.Alerts, *e.Alert)
			if len(c.Alerts) > keepAlerts {
				c.Alerts = slices.Delete(c.Alerts, 0, len(c.Alerts)-keepAlerts)
			}
		}
	case topics.CaseAssigned:
		c.Assignee = e.Assignee
	case topics.CaseCustomerConfirmed, topics.CaseCustomerDenied:
		ans := topics.AnswerConfirmed
		if e.Type == topics.CaseCustomerDenied {
			ans = topics.AnswerDenied
		}
		c.Answers = append(c.Answers, Answer{AlertID: e.AlertID, PaymentID: e.PaymentID, Answer: ans, At: e.At})
	case topics.CaseVerdictGiven:
		c.Verdict = &Verdict{Verdict: e.Verdict, Note: e.Note, By: e.By, At: e.At}
	case topics.CaseClosed:
		c.Open, c.ClosedAt = false, e.At
	case topics.CaseReopened:
		c.Open, c.ClosedAt = true, time.Time{}
	}
	h := e
	if h.Alert != nil {
		h.AlertID, h.Alert = h.Alert.ID, nil
	}
	c.History = append(c.History, h)
	if len(c.History) > keepHistory {
		c.History = slices.Delete(c.History, 0, len(c.History)-keepHistory)
	}
	c.Seq = max(c.Seq, e.Seq)
	if e.At.After(c.UpdatedAt) {
		c.UpdatedAt = e.At
	}
}

// event completes e as the next event of case c, applies it and returns it.
func event(a *Account, caseID string, seq int, e topics.CaseEvent) topics.CaseEvent {
	e.CaseID, e.AccountID, e.Seq = caseID, a.AccountID, seq+1
	Apply(a, e)
	return e
}

// seen reports whether id was recorded, and records it as delivered by from.
func (a *Account) seen(id, from string) bool {
	if slices.ContainsFunc(a.Seen, func(d Delivery) bool { return d.ID == id }) {
		return true
	}
	a.Seen = append(a.Seen, Delivery{ID: id, From: from})
	if len(a.Seen) > keepSeen {
		a.Seen = slices.Delete(a.Seen, 0, len(a.Seen)-keepSeen)
	}
	return false
}

// OnAlert puts an alert on the account's open case, or opens a new case when there is none or the last was
// closed: a closed case stays as the analyst left it, and new evidence is a new case. An alert seen before (a
// redelivery, a producer's retry) changes nothing. Answers that came before the alert are applied now. from
// identifies the record that delivered the alert (see Replay).
func OnAlert(a *Account, al topics.Alert, from string) []topics.CaseEvent {
	a.AccountID = al.AccountID
	cause := "alert:" + al.DeliveryID()
	if a.seen(cause, from) {
		return nil
	}
	var out []topics.CaseEvent
	stored := al
	if a.Current == nil || !a.Current.Open {
		out = append(out, event(a, CaseID(al.AccountID, a.Opened+1), 0,
			topics.CaseEvent{Type: topics.CaseOpened, At: al.DetectedAt, By: ByPipeline, Alert: &stored, Cause: cause}))
	} else {
		out = append(out, event(a, a.Current.ID, a.Current.Seq,
			topics.CaseEvent{Type: topics.CaseAlertAdded, At: al.DetectedAt, By: ByPipeline, Alert: &stored, Cause: cause}))
	}
	if i := slices.IndexFunc(a.Pending, func(p topics.CustomerAnswer) bool { return p.AlertID == al.ID }); i >= 0 {
		p := a.Pending[i]
		a.Pending = slices.Delete(a.Pending, i, i+1)
		if c := a.caseWith(p.AlertID); c != nil {
			// The answer's event is caused by this alert's record now: a redelivery of the record replays it.
			out = append(out, answerEvent(a, c, p, cause))
		}
	}
	return out
}

// OnAnswer records a customer's first answer about an alert on the case that holds the alert (even a closed
// one: the answer is part of its story). Later answers about the same alert change nothing (ErrRepeated); an
// answer about an alert no case holds yet waits for it (no events). from identifies the answer's record.
func OnAnswer(a *Account, ans topics.CustomerAnswer, from string) ([]topics.CaseEvent, error) {
	if ans.AlertID == "" || ans.AccountID == "" || ans.PaymentID == "" {
		return nil, fmt.Errorf("%w: alert, account and payment are required", ErrBadAnswer)
	}
	if ans.Answer != topics.AnswerConfirmed && ans.Answer != topics.AnswerDenied {
		return nil, fmt.Errorf("%w: answer %q is neither %s nor %s", ErrBadAnswer, ans.Answer, topics.AnswerConfirmed, topics.AnswerDenied)
	}
	a.AccountID = ans.AccountID
	cause := "answer:" + ans.AlertID
	if a.seen(cause, from) {
		return nil, ErrRepeated
	}
	if c := a.caseWith(ans.AlertID); c != nil {
		if c.AnswerTo(ans.AlertID) != nil { // answered so long ago that Seen has let go of it
			return nil, ErrRepeated
		}
		return []topics.CaseEvent{answerEvent(a, c, ans, cause)}, nil
	}
	a.Pending = append(a.Pending, ans)
	if len(a.Pending) > keepPending {
		a.Pending = slices.Delete(a.Pending, 0, len(a.Pending)-keepPending)
	}
	return nil, nil
}

// caseWith returns the case that holds the alert, nil if none does.
func (a *Account) caseWith(alertID string) *Case {
	for _, c := range a.All() {
		if slices.ContainsFunc(c.Alerts, func(al topics.Alert) bool { return al.ID == alertID }) {
			return c
		}
	}
	return nil
}

// answerEvent records the customer's answer on case c.
func answerEvent(a *Account, c *Case, ans topics.CustomerAnswer, cause string) topics.CaseEvent {
	typ := topics.CaseCustomerConfirmed
	if ans.Answer == topics.AnswerDenied {
		typ = topics.CaseCustomerDenied
	}
	return event(a, c.ID, c.Seq, topics.CaseEvent{Type: typ, At: ans.AnsweredAt, By: ByCustomer, AlertID: ans.AlertID,
		PaymentID: ans.PaymentID, Cause: cause})
}

// Validate checks what a command must carry, whatever the state.
func Validate(c topics.CaseCommand) error {
	if c.ID == "" || c.AccountID == "" || c.CaseID == "" || c.By == "" {
		return fmt.Errorf("%w: id, account, case and by are required", ErrBadCommand)
	}
	if len(c.Note) > maxNoteBytes {
		return fmt.Errorf("%w: the note has %d bytes, at most %d", ErrBadCommand, len(c.Note), maxNoteBytes)
	}
	switch c.Type {
	case topics.CommandAssign, topics.CommandClose, topics.CommandReopen:
	case topics.CommandVerdict:
		switch c.Verdict {
		case topics.CaseFraud, topics.CaseLegitimate, topics.CaseUnsure:
		default:
			return fmt.Errorf("%w: verdict %q: want fraud, legitimate or unsure", ErrBadCommand, c.Verdict)
		}
	default:
		return fmt.Errorf("%w: type %q: want assign, verdict, close or reopen", ErrBadCommand, c.Type)
	}
	return nil
}

// OnCommand applies an analyst's command to the account's current case. A command id seen before does nothing
// (ErrRepeated); a command the case does not allow (it is not the current case, a verdict on a closed case,
// closing a closed one) does nothing either (ErrConflict). Assigning a case to its assignee records no event.
// from identifies the command's record.
func OnCommand(a *Account, cmd topics.CaseCommand, from string) ([]topics.CaseEvent, error) {
	if err := Validate(cmd); err != nil {
		return nil, err
	}
	a.AccountID = cmd.AccountID
	cause := "command:" + cmd.ID
	if a.seen(cause, from) {
		return nil, ErrRepeated
	}
	c := a.Current
	if c == nil || c.ID != cmd.CaseID {
		return nil, fmt.Errorf("%w: case %s is not the account's current case", ErrConflict, cmd.CaseID)
	}
	e := topics.CaseEvent{At: cmd.At, By: cmd.By, CommandID: cmd.ID, Note: cmd.Note, Cause: cause}
	switch cmd.Type {
	case topics.CommandAssign:
		e.Type, e.Assignee, e.Note = topics.CaseAssigned, cmd.Assignee, ""
		if e.Assignee == "" {
			e.Assignee = cmd.By
		}
		if e.Assignee == c.Assignee {
			return nil, nil
		}
	case topics.CommandVerdict:
		e.Type, e.Verdict = topics.CaseVerdictGiven, cmd.Verdict
	case topics.CommandClose:
		e.Type = topics.CaseClosed
	case topics.CommandReopen:
		e.Type = topics.CaseReopened
	}
	if c.Open == (cmd.Type == topics.CommandReopen) {
		return nil, fmt.Errorf("%w: %s on a case that is %s", ErrConflict, cmd.Type, status(c))
	}
	return []topics.CaseEvent{event(a, c.ID, c.Seq, e)}, nil
}

func status(c *Case) string {
	if c.Open {
		return "open"
	}
	return "closed"
}

// Labels are the labels a verdict event gives the case's payments: fraud or legitimate, one per alerted
// payment, source analyst. An unsure verdict labels nothing.
func Labels(c *Case, e topics.CaseEvent) []topics.Label {
	if e.Type != topics.CaseVerdictGiven || (e.Verdict != topics.CaseFraud && e.Verdict != topics.CaseLegitimate) {
		return nil
	}
	var out []topics.Label
	done := map[string]bool{}
	for _, al := range c.Alerts {
		if done[al.PaymentID] {
			continue
		}
		done[al.PaymentID] = true
		out = append(out, topics.Label{AccountID: c.AccountID, PaymentID: al.PaymentID, Verdict: topics.Verdict(e.Verdict),
			Source: "analyst", AlertID: al.ID, At: e.At})
	}
	return out
}

// Rules returns the names of the rules that fired in the case's alerts, each once, in order of first firing.
func (c *Case) Rules() []string {
	var out []string
	for _, al := range c.Alerts {
		for _, f := range al.Rules {
			if !slices.Contains(out, f.Name) {
				out = append(out, f.Name)
			}
		}
	}
	return out
}

// Payments returns the payments the case shows, newest first: its alerts' own, and the account's recent
// payments the newest alert carries, each once.
func (c *Case) Payments() []topics.RecentPayment {
	var out []topics.RecentPayment
	seen := map[string]bool{}
	add := func(p topics.RecentPayment) {
		if !seen[p.ID] {
			seen[p.ID] = true
			out = append(out, p)
		}
	}
	for i := len(c.Alerts) - 1; i >= 0; i-- {
		a := c.Alerts[i]
		add(topics.RecentPayment{Payment: a.Payment, Score: a.Score, Action: a.Action})
		for _, r := range a.Recent {
			add(r)
		}
	}
	slices.SortStableFunc(out, func(a, b topics.RecentPayment) int { return b.Timestamp.Compare(a.Timestamp) })
	return out
}

// Action is the strongest action among the case's alerts.
func (c *Case) Action() topics.Action {
	act := topics.ActionNone
	for _, al := range c.Alerts {
		if al.Action == topics.ActionBlock {
			return topics.ActionBlock
		}
		if al.Action == topics.ActionReview {
			act = topics.ActionReview
		}
	}
	return act
}

// AnswerTo returns the customer's answer about an alert of the case, nil if there is none.
func (c *Case) AnswerTo(alertID string) *Answer {
	for i := range c.Answers {
		if c.Answers[i].AlertID == alertID {
			return &c.Answers[i]
		}
	}
	return nil
}

// Handled reports whether the command with id was handled (its id is remembered), and whether it took effect: an
// event of the account's cases carries it. A handled command without an event conflicted with the case, or was an
// assignment to the assignee.
func (a *Account) Handled(commandID string) (applied, handled bool) {
	if !slices.ContainsFunc(a.Seen, func(d Delivery) bool { return d.ID == "command:"+commandID }) {
		return false, false
	}
	for _, c := range a.All() {
		for _, e := range c.History {
			if e.CommandID == commandID {
				return true, true
			}
		}
	}
	return false, true
}

// Replay returns the events that the record from caused, when from is the record that first delivered an input
// the account has handled: a record delivered again after a crash, whose events may never have reached Kafka
// although the state that remembers it was kept. The events are rebuilt as they were first written (same keys,
// same values), so writing them again is harmless. ok is false for any other record: a new input, or a repeat
// of a handled one from another record (a double click, a producer's retry), which changes nothing.
func (a *Account) Replay(from string) (events []topics.CaseEvent, ok bool) {
	if from == "" {
		return nil, false
	}
	i := slices.IndexFunc(a.Seen, func(d Delivery) bool { return d.From == from })
	if i < 0 {
		return nil, false
	}
	cause := a.Seen[i].ID
	for _, c := range slices.Backward(a.All()) {
		for _, e := range c.History {
			if e.Cause != cause {
				continue
			}
			if e.Type == topics.CaseOpened || e.Type == topics.CaseAlertAdded {
				delivery := strings.TrimPrefix(cause, "alert:")
				if j := slices.IndexFunc(c.Alerts, func(al topics.Alert) bool { return al.DeliveryID() == delivery }); j >= 0 {
					al := c.Alerts[j]
					e.Alert, e.AlertID = &al, ""
				}
			}
			events = append(events, e)
		}
	}
	return events, true
}
