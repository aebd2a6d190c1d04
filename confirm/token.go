// Package confirm is the customer's side of a blocked payment: the signed link in the notification that asks "Was
// this you?", and what the answer sets in motion (the compensating commands for the payment service). It is pure
// logic: no Kafka, no HTTP.
package confirm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

// Signer seals and opens links with AES-256-GCM under a key derived from FRAUDPIPE_CONFIRM_KEY, the same on every
// notifier and console instance: a link can be neither read (it names the card and the account, and travels in SMS
// and mail) nor changed without the key.
type Signer struct {
	aead  cipher.AEAD
	phone []byte // HMAC key of PhoneKey, derived apart from the sealing key
}

// NewSigner returns a Signer, refusing a key too short to be a secret.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("confirmation key: %d bytes, at least %d needed", len(key), MinKeyBytes)
	}
	k := sha256.Sum256(append([]byte("fraudpipe confirmation link\x00"), key...))
	pk := sha256.Sum256(append([]byte("fraudpipe sms reply phone\x00"), key...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Signer{aead: aead, phone: pk[:]}, nil
}

// Token returns the link's token: its fields sealed, URL-safe.
func (s *Signer) Token(l Link) string {
	b, _ := json.Marshal(l) // a struct of strings and an int cannot fail
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, b, nil))
}

// maxToken bounds what Verify reads: a token is a few hundred bytes.
const maxToken = 2048

// Verify returns the link a token stands for if it was sealed with this key and has not expired at now.
func (s *Signer) Verify(token string, now time.Time) (Link, error) {
	var l Link
	if len(token) > maxToken {
		return l, ErrForged
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < s.aead.NonceSize() {
		return l, ErrForged
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], nil)
	if err != nil || json.Unmarshal(plain, &l) != nil || l.AlertID == "" || l.AccountID == "" {
		return Link{}, ErrForged
	}
	if now.Unix() >= l.Expires {
		return Link{}, ErrExpired
	}
	return l, nil
}

// ID identifies a link without revealing it, for logs and for remembering answers.
func (l Link) ID() string { return l.AlertID }

// PhoneKey is the record key under which the last link sent by SMS to a phone number is kept (the
// sms-confirmations topic), so that a reply from that number finds it: an HMAC of the number under a key derived
// from the confirmation key, hex. The topic then holds no phone number in clear, and nobody without the key can
// test a guessed number against it. Numbers are compared by their digits and a leading "+" only, so
// "+49 170 0000001" (a customer record) and "+491700000001" (Twilio's From) are the same.
func (s *Signer) PhoneKey(phone string) string {
	m := hmac.New(sha256.New, s.phone)
	m.Write([]byte(NormalizePhone(phone)))
	return hex.EncodeToString(m.Sum(nil))
}

// NormalizePhone keeps a phone number's leading "+" and its digits: spaces, dashes, dots and brackets are
// formatting.
func NormalizePhone(phone string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(phone) {
		if (r >= '0' && r <= '9') || (r == '+' && i == 0) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
