package notifier

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/rules"
)

const confirmKey = "0123456789abcdef0123456789abcdef"

var confirmLink = regexp.MustCompile(`https://bank\.example/confirm/([A-Za-z0-9_\-]+)`)

// A block alert's messages carry a "Was this you?" link signed for that alert, valid for the configured time;
// other actions' messages carry none, and so does every message without the confirm section.
func TestBlockMessagesCarryASignedConfirmationLink(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tmpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	cc := &ConfirmConfig{URL: "https://bank.example/confirm/", Actions: []rules.Action{rules.ActionBlock}, TTL: time.Hour, Key: confirmKey}
	if err := tmpl.WithConfirm(cc, func() time.Time { return now }); err != nil {
		t.Fatal(err)
	}
	signer, _ := confirm.NewSigner([]byte(confirmKey))
	a := alert("p1", rules.ActionBlock)
	for _, ch := range []string{ChannelSMS, ChannelEmail, ChannelPush} {
		m, err := tmpl.Render(ch, "x", a, nil)
		if err != nil {
			t.Fatal(err)
		}
		text := m.Text + m.HTML
		if ch == ChannelPush {
			var p struct{ URL string }
			if json.Unmarshal([]byte(m.Text), &p) != nil || p.URL == "" {
				t.Fatalf("push payload without a url: %s", m.Text)
			}
		}
		found := confirmLink.FindStringSubmatch(text)
		if found == nil {
			t.Fatalf("%s message without the link:\n%s", ch, text)
		}
		l, err := signer.Verify(found[1], now)
		if err != nil || l.AlertID != a.ID || l.AccountID != a.AccountID || l.PaymentID != "p1" || l.CardID != a.Payment.CardID {
			t.Fatalf("%s link: %+v %v", ch, l, err)
		}
		if _, err := signer.Verify(found[1], now.Add(time.Hour)); err == nil {
			t.Fatalf("%s link still valid after its TTL", ch)
		}
	}
	if m, _ := tmpl.Render(ChannelSMS, "x", alert("p2", rules.ActionReview), nil); strings.Contains(m.Text, "confirm/") {
		t.Fatalf("a review message got a link: %s", m.Text)
	}
	plain, _ := LoadTemplates("")
	if m, _ := plain.Render(ChannelSMS, "x", a, nil); strings.Contains(m.Text, "confirm/") || !strings.Contains(m.Text, "Call your bank") {
		t.Fatalf("without the confirm section: %s", m.Text)
	}
}

// The confirm section needs a URL, known actions and a signing key from the environment.
func TestTheConfirmSectionIsChecked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notifier.yaml")
	os.WriteFile(path, []byte("confirm:\n  url: bank.example\n  actions: [block, maybe]\n"), 0o644)
	t.Setenv(EnvConfirmKey, "short")
	_, err := LoadConfig(path)
	for _, want := range []string{"confirm.url", `"maybe"`, EnvConfirmKey} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v does not name %s", err, want)
		}
	}
	os.WriteFile(path, []byte("confirm:\n  url: https://bank.example/confirm\n"), 0o644)
	t.Setenv(EnvConfirmKey, confirmKey)
	c, err := LoadConfig(path)
	if err != nil || c.Confirm.TTL != 72*time.Hour || len(c.Confirm.Actions) != 1 || c.Confirm.Actions[0] != rules.ActionBlock {
		t.Fatalf("defaults: %+v %v", c.Confirm, err)
	}
	if s := c.Secrets(); len(s) != 1 || s[0] != confirmKey {
		t.Fatalf("the key is not among the secrets kept out of logs: %v", s)
	}
}
