package confirm

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestLinksAreSealedAndTrustedUntilTheyExpire(t *testing.T) {
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	l := Link{AlertID: "alert_1", AccountID: "acct_1", PaymentID: "pay_1", CardID: "card_1", Action: "block", Expires: now.Add(time.Hour).Unix()}
	tok := s.Token(l)
	if got, err := s.Verify(tok, now); err != nil || got != l {
		t.Fatalf("a fresh link: %+v %v", got, err)
	}
	if _, err := s.Verify(tok, now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at its expiry: %v", err)
	}
	if strings.Contains(tok, "card_1") || strings.Contains(tok, "acct_1") {
		t.Fatalf("the token shows what it stands for: %s", tok)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(tok); strings.Contains(string(raw), "card_1") {
		t.Fatal("the token's bytes name the card")
	}
	other, _ := NewSigner([]byte("another key, also thirty-two bytes long"))
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string]string{
		"sealed with another key": other.Token(l),
		"a flipped bit":           string(flipped),
		"cut short":               tok[:len(tok)-6],
		"not base64":              "!!!???",
		"empty":                   "",
		"huge":                    strings.Repeat("a", 5000),
	} {
		if _, err := s.Verify(bad, now); !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v, want forged", name, err)
		}
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

func answer(alert string, a topics.Answer, card string) topics.CustomerAnswer {
	return topics.CustomerAnswer{AlertID: alert, AccountID: "acct_1", PaymentID: "pay_" + alert, CardID: card, Action: topics.ActionBlock, Answer: a}
}

func commands(cmds []topics.PaymentCommand) string {
	var names []string
	for _, c := range cmds {
		names = append(names, c.Command+"@"+c.PaymentID)
	}
	return strings.Join(names, ",")
}

// The first answer for an alert decides; the same answer again and a different one later change nothing.
func TestTheFirstAnswerDecides(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var st Answered
	steps := []struct {
		a       topics.CustomerAnswer
		outcome Outcome
		cmds    string
	}{
		{answer("a1", topics.AnswerDenied, "card_1"), First, "confirm-block@pay_a1,block-card@pay_a1"},
		{answer("a1", topics.AnswerDenied, "card_1"), Repeated, ""},
		{answer("a1", topics.AnswerConfirmed, "card_1"), Conflicts, ""},
		{answer("a2", topics.AnswerConfirmed, "card_1"), First, "release@pay_a2"},
		{answer("a2", topics.AnswerDenied, "card_1"), Conflicts, ""},
		{answer("a3", topics.AnswerDenied, ""), First, "confirm-block@pay_a3"}, // no card to block
	}
	for i, s := range steps {
		cmds, outcome, err := Decide(&st, s.a, now)
		if err != nil || outcome != s.outcome || commands(cmds) != s.cmds {
			t.Fatalf("step %d: %s %q %v, want %s %q", i, outcome, commands(cmds), err, s.outcome, s.cmds)
		}
		for _, c := range cmds {
			if c.ID != c.AlertID+":"+c.Command || !c.IssuedAt.Equal(now) {
				t.Fatalf("command %+v", c)
			}
		}
	}
	for _, bad := range []topics.CustomerAnswer{
		{AccountID: "acct_1", PaymentID: "p", Answer: topics.AnswerDenied},
		answer("a9", "maybe", ""),
	} {
		if _, _, err := Decide(&st, bad, now); !errors.Is(err, ErrBadAnswer) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	for i := range keepAnswered + 10 {
		Decide(&st, answer("bulk"+string(rune('a'+i%26))+strings.Repeat("x", i/26), topics.AnswerConfirmed, ""), now)
	}
	if len(st.Alerts) != keepAnswered {
		t.Fatalf("%d answered alerts kept, want %d", len(st.Alerts), keepAnswered)
	}
}

// A phone number's key is the same however the number is written, differs between numbers and between keys, and
// does not show the number.
func TestPhoneKeysHideTheNumber(t *testing.T) {
	s, _ := NewSigner(key)
	other, _ := NewSigner([]byte("another key, also thirty-two bytes long"))
	k := s.PhoneKey("+491700000001")
	for _, same := range []string{"+49 170 0000001", " +49-170-000-0001 ", "+49 (170) 0000001"} {
		if s.PhoneKey(same) != k {
			t.Errorf("%q has another key than +491700000001", same)
		}
	}
	for name, diff := range map[string]string{
		"another number":      s.PhoneKey("+491700000002"),
		"without the plus":    s.PhoneKey("491700000001"),
		"another signing key": other.PhoneKey("+491700000001"),
	} {
		if diff == k {
			t.Errorf("%s: the same key", name)
		}
	}
	if len(k) != 64 || strings.Contains(k, "1700000001") {
		t.Fatalf("key %q", k)
	}
}
