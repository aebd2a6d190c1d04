package confirm

import (
	"errors"
	"fmt"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Answered is an account's saga state: the alerts whose links were answered, so that an answer counts once
// however often it is clicked, retried or redelivered.
type Answered struct {
	Alerts []AnsweredAlert `json:"alerts"` // oldest first
}

// AnsweredAlert is the first answer an alert got.
type AnsweredAlert struct {
	AlertID string        `json:"alert_id"`
	Answer  topics.Answer `json:"answer"`
	At      time.Time     `json:"at"`
}

// keepAnswered bounds an account's state: links expire within days, and no account answers hundreds in that time.
const keepAnswered = 256

// Outcome says what became of an answer.
type Outcome string

const (
	First     Outcome = "first"     // the alert's first answer: its commands are issued
	Repeated  Outcome = "repeated"  // the same answer again (a double click, a retry): nothing more
	Conflicts Outcome = "conflicts" // another answer after the first: the first stands
)

// ErrBadAnswer is an answer record that names no alert or says neither yes nor no.
var ErrBadAnswer = errors.New("customer answer")

// Decide records a's answer in st and returns the commands it sets in motion: on an alert's first answer,
// "it was me" releases the payment, "it wasn't me" confirms the block and blocks the card. Any later answer
// for the alert changes nothing.
func Decide(st *Answered, a topics.CustomerAnswer, now time.Time) ([]topics.PaymentCommand, Outcome, error) {
	if a.AlertID == "" || a.AccountID == "" || a.PaymentID == "" {
		return nil, "", fmt.Errorf("%w: alert, account and payment are required", ErrBadAnswer)
	}
	if a.Answer != topics.AnswerConfirmed && a.Answer != topics.AnswerDenied {
		return nil, "", fmt.Errorf("%w: answer %q is neither %s nor %s", ErrBadAnswer, a.Answer, topics.AnswerConfirmed, topics.AnswerDenied)
	}
	for _, prev := range st.Alerts {
		if prev.AlertID == a.AlertID {
			if prev.Answer == a.Answer {
				return nil, Repeated, nil
			}
			return nil, Conflicts, nil
		}
	}
	st.Alerts = append(st.Alerts, AnsweredAlert{AlertID: a.AlertID, Answer: a.Answer, At: now})
	if len(st.Alerts) > keepAnswered {
		st.Alerts = append(st.Alerts[:0], st.Alerts[len(st.Alerts)-keepAnswered:]...)
	}
	cmd := func(name, reason string) topics.PaymentCommand {
		return topics.PaymentCommand{ID: a.AlertID + ":" + name, Command: name, AccountID: a.AccountID, PaymentID: a.PaymentID,
			CardID: a.CardID, AlertID: a.AlertID, Reason: reason, IssuedAt: now}
	}
	if a.Answer == topics.AnswerConfirmed {
		return []topics.PaymentCommand{cmd(topics.CommandRelease, "the customer confirmed the payment")}, First, nil
	}
	cmds := []topics.PaymentCommand{cmd(topics.CommandConfirmBlock, "the customer denied the payment")}
	if a.CardID != "" {
		cmds = append(cmds, cmd(topics.CommandBlockCard, "the customer denied a payment with this card"))
	}
	return cmds, First, nil
}

// LabelOf is the label an answer gives its payment: "it wasn't me" is fraud, "it was me" legitimate.
func LabelOf(a topics.CustomerAnswer) *topics.Label {
	v := topics.VerdictLegitimate
	if a.Answer == topics.AnswerDenied {
		v = topics.VerdictFraud
	}
	return &topics.Label{AccountID: a.AccountID, PaymentID: a.PaymentID, Verdict: v, Source: "customer", AlertID: a.AlertID, At: a.AnsweredAt}
}
