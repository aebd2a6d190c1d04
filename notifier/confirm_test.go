package notifier

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
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

type rememberedLinks struct {
	mu    sync.Mutex
	links []string // phone=token
}

func (r *rememberedLinks) Remember(_ context.Context, phone, token string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.links = append(r.links, phone+"="+token)
	return nil
}

func (r *rememberedLinks) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.links)
}

// The link of a sent SMS is remembered for the customer's reply, under the number it went to, once; not the
// links of emails or push messages, not for alerts whose messages carry none, and not when the SMS failed.
func TestASentSMSLinkIsRememberedForTheReply(t *testing.T) {
	t.Setenv(EnvConfirmKey, confirmKey)
	e := newEnv(t, "confirm: { url: \"https://bank.example/confirm\", actions: [block] }")
	if err := e.d.templates.WithConfirm(e.d.cfg.Confirm, time.Now); err != nil {
		t.Fatal(err)
	}
	links := &rememberedLinks{}
	e.d.smsLinks = links
	e.ana(t, nil)
	ctx := context.Background()
	a := alert("pay_1", rules.ActionBlock)
	for range 2 { // redelivered: sent once, remembered once
		if err := e.d.Handle(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	sms := e.sms.Requests()
	if len(sms) != 1 {
		t.Fatalf("%d SMS", len(sms))
	}
	found := confirmLink.FindStringSubmatch(sms[0].Form["Body"])
	if found == nil || !slices.Equal(links.all(), []string{"+4915112345678=" + found[1]}) {
		t.Fatalf("remembered %v for the SMS %q", links.all(), sms[0].Form["Body"])
	}
	if err := e.d.Handle(ctx, alert("pay_2", rules.ActionReview)); err != nil {
		t.Fatal(err)
	}
	e.sms.Respond(func(_ int, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`))
		return true
	})
	if err := e.d.Handle(ctx, alert("pay_3", rules.ActionBlock)); err != nil {
		t.Fatal(err)
	}
	if n := len(links.all()); n != 1 {
		t.Fatalf("%d links remembered, want only the first SMS's: %v", n, links.all())
	}
}

// KafkaSMSLinks writes a number's link to sms-confirmations under the number's HMAC, never the number itself.
func TestKafkaSMSLinksKeysByTheNumbersHMAC(t *testing.T) {
	k := testenv.Kafka(t, 1, topics.SMSConfirmations)
	signer, _ := confirm.NewSigner([]byte(confirmKey))
	links, err := NewKafkaSMSLinks(k, signer, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := links.Remember(ctx, "+49 151 12345678", "sealed-token"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(topics.SMSConfirmations),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	r := fs.Records()[0]
	var v topics.SMSConfirmation
	if string(r.Key) != signer.PhoneKey("+4915112345678") || json.Unmarshal(r.Value, &v) != nil || v.Token != "sealed-token" ||
		strings.Contains(string(r.Key)+string(r.Value), "12345678") {
		t.Fatalf("record %s = %s", r.Key, r.Value)
	}
}
