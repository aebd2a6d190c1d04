// Package confirm is the customer's side of a blocked payment: the signed link in the notification that asks "Was
// this you?", and what the answer sets in motion (the compensating commands for the payment service). It is pure
// logic: no Kafka, no HTTP.
package confirm

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Link is what a confirmation link stands for: one alert's payment, until Expires. It travels signed in the
// link, so the page and the saga trust it without a lookup.
type Link struct {
	AlertID   string `json:"a"`
	AccountID string `json:"c"`
	PaymentID string `json:"p"`
	CardID    string `json:"k,omitempty"`
	Action    string `json:"x"` // the alert's action: block or review
	Expires   int64  `json:"e"` // unix seconds
}

// The reasons a link is refused. The page shows one message for all of them, and the log only the reason.
var (
	ErrForged  = errors.New("confirmation link: bad signature")
	ErrExpired = errors.New("confirmation link: expired")
)

// MinKeyBytes is the shortest key accepted for signing links.
const MinKeyBytes = 32

// Signer signs and checks links with an HMAC-SHA256 key (FRAUDPIPE_CONFIRM_KEY), the same on every notifier and
// console instance.
type Signer struct{ key []byte }

// NewSigner returns a Signer, refusing a key too short to be a secret.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("confirmation key: %d bytes, at least %d needed", len(key), MinKeyBytes)
	}
	return &Signer{key: key}, nil
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Token returns the link's token: its fields and their MAC, URL-safe.
func (s *Signer) Token(l Link) string {
	b, _ := json.Marshal(l) // a struct of strings and an int cannot fail
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// maxToken bounds what Verify reads: a token is a few hundred bytes.
const maxToken = 2048

// Verify returns the link a token stands for if it is signed with this key and not expired at now.
func (s *Signer) Verify(token string, now time.Time) (Link, error) {
	var l Link
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > maxToken {
		return l, ErrForged
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return l, ErrForged
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &l) != nil || l.AlertID == "" || l.AccountID == "" {
		return Link{}, ErrForged // signed by us, so not expected; refused all the same
	}
	if now.Unix() >= l.Expires {
		return Link{}, ErrExpired
	}
	return l, nil
}

// ID identifies a link without revealing it, for logs and for remembering answers.
func (l Link) ID() string { return l.AlertID }
