package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/internal/testenv"
	"github.com/fraudpipe/fraudpipe/topics"
)

// Twilio's own example (its docs and helper libraries): this URL and these parameters, signed with auth token
// 12345, carry this X-Twilio-Signature.
func TestTwilioSignatureMatchesTwiliosExample(t *testing.T) {
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675310"}, "Digits": {"1234"},
		"From": {"+14158675310"}, "To": {"+18005551212"}}
	if got := twilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", form); got != "GvWf1cFY/Q7PnoempGyD5oXAezc=" {
		t.Fatalf("signature %s", got)
	}
}

func TestRepliesAreReadAsYesOrNo(t *testing.T) {
	for body, want := range map[string]topics.Answer{
		"YES": topics.AnswerConfirmed, " yes. ": topics.AnswerConfirmed, "Y": topics.AnswerConfirmed, "It was me!": topics.AnswerConfirmed,
		"it’s me": topics.AnswerConfirmed, "Yes, it was me": topics.AnswerConfirmed,
		"no": topics.AnswerDenied, "N": topics.AnswerDenied, "NOT ME": topics.AnswerDenied, "No, it wasn't me.": topics.AnswerDenied,
		"it wasn’t me": topics.AnswerDenied, "Nope": topics.AnswerDenied,
		"maybe": "", "": "", "yes no": "", "no idea": "", "not sure it was me": "", "STOP": "",
	} {
		got, ok := parseReply(body)
		if got != want || ok != (want != "") {
			t.Errorf("%q read as %q %v, want %q", body, got, ok, want)
		}
	}
}

const (
	twilioToken = "twilio auth token for tests"
	publicURL   = "https://bank.example/sms/reply" // what Twilio calls: the console sits behind a proxy
)

// smsReplyEnv is a console with the webhook, its index of links, and the answers it records.
type smsReplyEnv struct {
	t      *testing.T
	base   string
	signer *confirm.Signer
	links  *SMSLinks
	ready  chan struct{}
	log    *testenv.Buffer
	clock  atomic.Int64 // unix nanoseconds: the server's goroutines read it

	mu  sync.Mutex
	got []topics.CustomerAnswer
}

func newSMSReplyEnv(t *testing.T) *smsReplyEnv {
	e := &smsReplyEnv{t: t, ready: make(chan struct{}), log: &testenv.Buffer{}}
	e.clock.Store(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC).UnixNano())
	e.signer, _ = confirm.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	e.links = NewSMSLinks(e.signer, e.now, e.ready)
	sr, err := NewSMSReplies(twilioToken, publicURL, e.links)
	if err != nil {
		t.Fatal(err)
	}
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Confirm: e.signer, SMSReplies: sr, Now: e.now,
		Log: slog.New(slog.NewTextHandler(e.log, nil)),
		Answers: func(_ context.Context, a topics.CustomerAnswer) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.got = append(e.got, a)
			return nil
		}})
	e.base = ts.URL
	return e
}

func (e *smsReplyEnv) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

// link records that an SMS to phone carried the link l, as the notifier does.
func (e *smsReplyEnv) link(phone string, l confirm.Link) {
	b, _ := json.Marshal(topics.SMSConfirmation{Token: e.signer.Token(l), SentAt: e.now()})
	e.links.Apply([]byte(e.signer.PhoneKey(phone)), b)
}

func (e *smsReplyEnv) answers() []topics.CustomerAnswer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]topics.CustomerAnswer(nil), e.got...)
}

// twilioForm is what Twilio posts for an incoming SMS.
func twilioForm(from, body, sid string) url.Values {
	return url.Values{"From": {from}, "To": {"+15005550006"}, "Body": {body}, "MessageSid": {sid}, "SmsSid": {sid},
		"AccountSid": {"AC0123"}, "NumMedia": {"0"}, "FromCountry": {"DE"}, "ApiVersion": {"2010-04-01"}}
}

// post sends form to the webhook signed with token over signedURL ("" token: unsigned), and returns the status
// and the TwiML message.
func (e *smsReplyEnv) post(form url.Values, token, signedURL string) (int, string) {
	e.t.Helper()
	return e.postBody(form.Encode(), form, token, signedURL)
}

func (e *smsReplyEnv) postBody(body string, signedForm url.Values, token, signedURL string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.base+"/sms/reply", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("X-Twilio-Signature", twilioSignature(token, signedURL, signedForm))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") != "text/xml; charset=utf-8" {
		e.t.Fatalf("TwiML as %s", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

// A signed YES or NO answers the newest link sent to the number, once however often the request comes; a bad
// signature, another URL, or a changed body is refused with a bare 403; an unknown number or a dead link gets
// the same neutral message; and nothing of that reaches the log but the reason and the masked number.
func TestSMSRepliesAnswerTheNumbersLink(t *testing.T) {
	e := newSMSReplyEnv(t)
	ana, ben := "+491700000001", "+491700000002"
	old := confirm.Link{AlertID: "alert_old", AccountID: "acct_ana", PaymentID: "pay_old", Action: "block", Expires: e.now().Add(time.Hour).Unix()}
	l := confirm.Link{AlertID: "alert_1", AccountID: "acct_ana", PaymentID: "pay_1", CardID: "card_1", Action: "block", Expires: e.now().Add(time.Hour).Unix()}

	e.link(ana, l)
	if code, _ := e.post(twilioForm(ana, "NO", "SM1"), twilioToken, publicURL); code != http.StatusServiceUnavailable {
		t.Fatalf("before the index caught up: %d", code)
	}
	close(e.ready)
	e.link(ana, old)
	e.link("+49 170 0000001", l) // the newest link for the number, written as in the customer record

	// Ana denies: answered, and told so. The same request again (a replay, a provider retry) records nothing more.
	for range 2 {
		code, body := e.post(twilioForm(ana, "No, it wasn't me", "SM1"), twilioToken, publicURL)
		if code != http.StatusOK || !strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`) ||
			!strings.Contains(body, "<Response><Message>Thank you. We noted that you did not make the payment (Ref alert_1); it stays blocked and we are blocking your card.</Message></Response>") {
			t.Fatalf("denied: %d %s", code, body)
		}
	}
	want := topics.CustomerAnswer{AlertID: "alert_1", AccountID: "acct_ana", PaymentID: "pay_1", CardID: "card_1",
		Action: topics.ActionBlock, Answer: topics.AnswerDenied, Channel: "sms", AnsweredAt: e.now()}
	if got := e.answers(); len(got) != 1 || got[0] != want {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}

	// Refused with a bare 403, recording nothing.
	other := twilioForm(ana, "YES", "SM2")
	for name, code := range map[string]int{
		"unsigned":                             func() int { c, _ := e.post(other, "", ""); return c }(),
		"signed with another token":            func() int { c, _ := e.post(other, "another auth token", publicURL); return c }(),
		"signed for the console's own address": func() int { c, _ := e.post(other, twilioToken, e.base+"/sms/reply"); return c }(),
		"signed for another path":              func() int { c, _ := e.post(other, twilioToken, "https://bank.example/sms/replies"); return c }(),
		"a changed body": func() int {
			c, _ := e.postBody(twilioForm(ana, "NO", "SM2").Encode(), other, twilioToken, publicURL)
			return c
		}(),
		"a parameter added": func() int {
			c, _ := e.postBody(other.Encode()+"&Extra=1", other, twilioToken, publicURL)
			return c
		}(),
	} {
		if code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if n := len(e.answers()); n != 1 {
		t.Fatalf("refused requests recorded answers: %+v", e.answers())
	}

	// Twilio may sign the URL with the scheme's default port.
	e.link(ben, confirm.Link{AlertID: "alert_2", AccountID: "acct_ben", PaymentID: "pay_2", Action: "review", Expires: e.now().Add(time.Hour).Unix()})
	code, body := e.post(twilioForm(ben, "yes", "SM3"), twilioToken, "https://bank.example:443/sms/reply")
	if code != http.StatusOK || !strings.Contains(body, "you made the payment (Ref alert_2); it will go through") {
		t.Fatalf("confirmed: %d %s", code, body)
	}
	if got := e.answers(); len(got) != 2 || got[1].Answer != topics.AnswerConfirmed || got[1].AlertID != "alert_2" || got[1].Channel != "sms" {
		t.Fatalf("recorded %+v", got)
	}

	// Neither yes nor no: asked again. A number without a link, or with an expired or forged one: one neutral
	// message for all.
	if code, body := e.post(twilioForm(ana, "what payment?", "SM4"), twilioToken, publicURL); code != http.StatusOK || !strings.Contains(body, smsReplyUnclear) {
		t.Fatalf("unclear: %d %s", code, body)
	}
	forger, _ := confirm.NewSigner([]byte("another key, also thirty-two bytes long"))
	b, _ := json.Marshal(topics.SMSConfirmation{Token: forger.Token(l)})
	e.links.Apply([]byte(e.signer.PhoneKey("+491700000004")), b) // not kept: it does not open
	for i, from := range []string{"+491700000009", "+491700000004"} {
		code, body := e.post(twilioForm(from, "NO", "SM5"+string(rune('a'+i))), twilioToken, publicURL)
		if code != http.StatusOK || !strings.Contains(body, "<Message>"+smsReplyUnknown+"</Message>") {
			t.Fatalf("%s: %d %s", from, code, body)
		}
	}
	// Ana's link expires while the console holds it.
	e.clock.Store(time.Unix(l.Expires, 0).UnixNano())
	if code, body := e.post(twilioForm(ana, "NO", "SM6"), twilioToken, publicURL); code != http.StatusOK || !strings.Contains(body, "<Message>"+smsReplyUnknown+"</Message>") {
		t.Fatalf("an expired link: %d %s", code, body)
	}
	if n := len(e.answers()); n != 2 {
		t.Fatalf("%d answers recorded, want 2: %+v", n, e.answers())
	}

	logs := e.log.String()
	for _, reason := range []string{"bad signature", "no link sent to this number", "expired link", "neither yes nor no"} {
		if !strings.Contains(logs, `reason="`+reason+`"`) {
			t.Errorf("no log line with reason %q:\n%s", reason, logs)
		}
	}
	if strings.Contains(logs, "1700000001") || !strings.Contains(logs, "from=+49*******001") || strings.Contains(logs, e.signer.Token(l)[:20]) {
		t.Fatalf("the log shows a number or a token:\n%s", logs)
	}
}

// The index keeps a number's newest live link: a newer record replaces it, even one that no longer opens, an
// empty record removes it, and links that expire while held are swept out as records keep coming.
func TestSMSLinksKeepTheNewestLiveLinkPerNumber(t *testing.T) {
	ready := make(chan struct{})
	close(ready)
	signer, _ := confirm.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	l := NewSMSLinks(signer, func() time.Time { return time.Unix(0, clock.Load()) }, ready)
	rec := func(alert string, ttl time.Duration) []byte {
		tok := signer.Token(confirm.Link{AlertID: alert, AccountID: "a", PaymentID: "p", Expires: start.Add(ttl).Unix()})
		b, _ := json.Marshal(topics.SMSConfirmation{Token: tok})
		return b
	}
	alertOf := func(key string) string {
		tok, ok, err := l.lookup(key)
		if err != nil || !ok {
			return ""
		}
		link, _ := signer.Verify(tok, time.Unix(0, clock.Load()))
		return link.AlertID
	}
	l.Apply([]byte("k1"), rec("a1", time.Hour))
	l.Apply([]byte("k1"), rec("a2", time.Hour))
	l.Apply([]byte("k2"), rec("a3", time.Hour))
	l.Apply([]byte("k2"), nil)
	l.Apply([]byte("k3"), rec("a4", time.Hour))
	l.Apply([]byte("k3"), rec("a5", 0)) // expired on arrival
	l.Apply([]byte("k4"), rec("a6", 2*time.Hour))
	if got := [4]string{alertOf("k1"), alertOf("k2"), alertOf("k3"), alertOf("k4")}; got != [4]string{"a2", "", "", "a6"} || l.Len() != 2 {
		t.Fatalf("links %v, %d held", got, l.Len())
	}
	clock.Store(start.Add(90 * time.Minute).UnixNano()) // k1's link expires, k4's not
	for i := range sweepEvery {
		l.Apply(fmt.Appendf(nil, "new%d", i), rec("b", 3*time.Hour))
	}
	if l.Len() != sweepEvery+1 || alertOf("k4") != "a6" {
		t.Fatalf("%d links held after the sweep, want the %d new ones and k4's", l.Len(), sweepEvery)
	}
}
