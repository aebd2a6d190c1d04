package topics

import (
	"encoding/json"
	"fmt"
	"time"
)

// The customer confirmation saga's topics, key = account id.
const (
	// CustomerAnswers holds customers' answers to "Was this you?" links, as they come (duplicates included).
	CustomerAnswers = "customer-answers"
	// CustomerAnswersDLQ holds answer records the saga cannot read.
	CustomerAnswersDLQ = "customer-answers.dlq"
	// PaymentActions holds the commands for the payment service that the answers set in motion, each once.
	PaymentActions = "payment-actions"
)

// SMSConfirmations holds, per phone number, the last "Was this you?" link the notifier sent there by SMS, so
// that the console knows what a reply from that number answers. Key = confirm.Signer.PhoneKey(number), an HMAC:
// no number in clear. Compacted: only the newest link per number counts.
const SMSConfirmations = "sms-confirmations"

// SMSConfirmation is the link an SMS carried: its sealed token (confirm.Signer.Token), which names the alert,
// the payment and the card only to a holder of the confirmation key.
type SMSConfirmation struct {
	Token  string    `json:"token"`
	SentAt time.Time `json:"sent_at"`
}

// Answer is what a customer says about a payment.
type Answer string

const (
	AnswerConfirmed Answer = "confirmed" // "it was me": the payment is legitimate
	AnswerDenied    Answer = "denied"    // "it wasn't me": fraud
)

// CustomerAnswer is one answer to a confirmation link.
type CustomerAnswer struct {
	AlertID    string    `json:"alert_id"`
	AccountID  string    `json:"account_id"`
	PaymentID  string    `json:"payment_id"`
	CardID     string    `json:"card_id,omitempty"`
	Action     Action    `json:"action"` // the alert's
	Answer     Answer    `json:"answer"`
	Channel    string    `json:"channel"` // web (the link's page) or sms (a reply to the SMS that carried the link)
	AnsweredAt time.Time `json:"answered_at"`
}

// Payment service commands.
const (
	CommandRelease      = "release"       // the payment is the customer's: let it through, lift its hold
	CommandConfirmBlock = "confirm-block" // the payment is fraud: keep it blocked, reverse it if it went through
	CommandBlockCard    = "block-card"    // the card was used by someone else: stop it
)

// PaymentCommand is a command for the payment service. ID is derived from the alert and the command, so a
// consumer can drop the repeats at-least-once delivery may bring.
type PaymentCommand struct {
	ID        string    `json:"id"`
	Command   string    `json:"command"`
	AccountID string    `json:"account_id"`
	PaymentID string    `json:"payment_id"`
	CardID    string    `json:"card_id,omitempty"`
	AlertID   string    `json:"alert_id"`
	Reason    string    `json:"reason"`
	IssuedAt  time.Time `json:"issued_at"`
}

// JSON is the codec of the saga's records: JSON both ways, decoding to a *T.
type JSON[T any] struct{}

func (JSON[T]) Encode(v any) ([]byte, error) { return json.Marshal(v) }

func (JSON[T]) Decode(b []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %T: %w", *v, err)
	}
	return v, nil
}

// Labels holds what is known of payments after the fact: fraud or legitimate, from a customer's answer (and, in
// time, an analyst's verdict). Key = account id + "/" + payment id (payment ids are unique per account); compacted,
// so the newest label of a payment stands.
const Labels = "labels"

// Verdict is a label's finding.
type Verdict string

const (
	VerdictFraud      Verdict = "fraud"
	VerdictLegitimate Verdict = "legitimate"
)

// Label says whether a payment was fraud, who said so and when.
type Label struct {
	AccountID string    `json:"account_id"`
	PaymentID string    `json:"payment_id"`
	Verdict   Verdict   `json:"verdict"`
	Source    string    `json:"source"` // customer, analyst, generator
	AlertID   string    `json:"alert_id,omitempty"`
	At        time.Time `json:"at"`
}

// LabelKey is a label's record key.
func LabelKey(account, payment string) string { return account + "/" + payment }
