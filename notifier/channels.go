package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/fraudpipe/fraudpipe/logging"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Message is one rendered notification for one recipient.
type Message struct {
	Channel   string
	To        string // email address, phone number or push endpoint
	Subject   string
	Text      string
	HTML      string
	MessageID string // deterministic per alert and recipient: the provider's own dedup key where it has one
	Push      *topics.PushSubscription
	Urgent    bool // block alerts: high push urgency
	Topic     string
	// ConfirmToken is the token of the "Was this you?" link the message carries, "" for none: an SMS's is
	// remembered for the customer's reply (SMSLinks).
	ConfirmToken string
}

// Sender delivers a message through one provider. An error is permanent unless it is a *TemporaryError.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// TemporaryError is a failure that may succeed later: a 4xx SMTP reply, HTTP 5xx or 429, a timeout.
type TemporaryError struct {
	Err        error
	RetryAfter time.Duration // the provider asked to wait this long (HTTP Retry-After)
	// Unsure is set when the provider may have accepted the message despite the error (a timeout after the
	// request was sent): a retry may then duplicate it.
	Unsure bool
}

func (e *TemporaryError) Error() string { return "temporary: " + e.Err.Error() }
func (e *TemporaryError) Unwrap() error { return e.Err }

// IsTemporary reports whether err may succeed on retry.
func IsTemporary(err error) bool {
	var t *TemporaryError
	return errors.As(err, &t)
}

// networkError classifies a transport failure (refused, reset, timed out): temporary, and unsure once the
// request may have been sent.
func networkError(err error, sent bool) error {
	return &TemporaryError{Err: err, Unsure: sent}
}

// recipientID is a stable, non-reversible id of a recipient for Redis keys and Message-IDs, so addresses and
// phone numbers do not appear in key names.
func recipientID(to string) string {
	sum := sha256.Sum256([]byte(to))
	return hex.EncodeToString(sum[:8])
}

// maskRecipient is how a recipient appears in logs and outcome records.
func maskRecipient(channel, to string) string {
	switch channel {
	case ChannelEmail:
		return logging.MaskEmail(to)
	case ChannelSMS:
		return logging.MaskPhone(to)
	case ChannelPush:
		return "push:" + recipientID(to)
	}
	return to
}

// messageID is the Message-ID header of an alert's email to a recipient: the same alert and recipient always
// give the same id, so a resend after a crash is recognisable as the same message.
func messageID(alertID, to string) string {
	return fmt.Sprintf("<%s.%s@fraudpipe>", alertID, recipientID(to))
}
