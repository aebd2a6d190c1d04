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
	Channel    string    `json:"channel"` // web (the link's page)
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

// CustomerAnswerCodec encodes answers as JSON.
type CustomerAnswerCodec struct{}

func (CustomerAnswerCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

func (CustomerAnswerCodec) Decode(b []byte) (any, error) {
	var a CustomerAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode customer answer: %w", err)
	}
	return &a, nil
}

// PaymentCommandCodec encodes payment commands as JSON.
type PaymentCommandCodec struct{}

func (PaymentCommandCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

func (PaymentCommandCodec) Decode(b []byte) (any, error) {
	var c PaymentCommand
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode payment command: %w", err)
	}
	return &c, nil
}
