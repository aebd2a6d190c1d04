package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

// signTwilio is X-Twilio-Signature as Twilio documents it, written here apart from the console's: the URL, then
// every POST parameter's name and value by name, HMAC-SHA1 under the auth token, base64.
func signTwilio(token, u string, form url.Values) string {
	s := u
	names := make([]string, 0, len(form))
	for n := range form {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s += n + form.Get(n)
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// The customer confirmation saga answered by SMS, through fraudpipe run: the SMS for an alert carries a link;
// the customer replies "NO" to it; the SMS provider posts the reply, Twilio-signed for the console's public URL
// (it sits behind a proxy), to /sms/reply; the console answers in TwiML; payment-actions then holds the block
// confirmation and the card block, and labels the fraud label, once each, however often the reply comes.
func TestACustomerDeniesAPaymentByReplyingToTheSMS(t *testing.T) {
	embeddedOnly(t)
	requireTool(t, "kcat")
	const authToken, publicURL, phone = "e2e twilio auth token", "https://bank.example/fraud/sms/reply", "+491700000007"
	t.Setenv("FRAUDPIPE_TWILIO_AUTH_TOKEN", authToken)
	r := startConfirmRun(t, "acct_reply", phone, func(string) string { return "https://bank.example/confirm" }, "--sms-reply-url", publicURL)
	r.smsLink(t, regexp.MustCompile(`https://bank\.example/confirm/\S+`), "reply")

	c := &http.Client{Timeout: 10 * time.Second}
	reply := func(form url.Values, signature string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+r.consoleAddr+"/sms/reply", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	form := func(body, sid string) url.Values {
		return url.Values{"From": {phone}, "To": {"+15005550006"}, "Body": {body}, "MessageSid": {sid}, "AccountSid": {"ACe2e"},
			"NumMedia": {"0"}, "ApiVersion": {"2010-04-01"}}
	}
	if code, _ := reply(form("NO", "SMforged"), signTwilio("not the auth token", publicURL, form("NO", "SMforged"))); code != http.StatusForbidden {
		t.Fatalf("a reply signed with another token: %d", code)
	}
	// The console learns of the SMS's link from sms-confirmations, a moment after it was sent: until then a
	// reply gets the neutral answer and records nothing.
	var answered url.Values
	var twiml string
	waitFor(t, 30*time.Second, "the reply answered", func() bool {
		f := form("No", fmt.Sprintf("SM%d", time.Now().UnixNano()))
		code, body := reply(f, signTwilio(authToken, publicURL, f))
		if code != http.StatusOK {
			t.Fatalf("reply: %d %s", code, body)
		}
		answered, twiml = f, body
		return strings.Contains(body, "you did not make the payment")
	})
	if !strings.Contains(twiml, "<Response><Message>") || !strings.Contains(twiml, "blocking your card") {
		t.Fatalf("TwiML %s", twiml)
	}
	// The same request again (a replay), and the customer replying NO once more.
	if code, body := reply(answered, signTwilio(authToken, publicURL, answered)); code != http.StatusOK || body != twiml {
		t.Fatalf("the replayed reply: %d %s", code, body)
	}
	again := form("not me", "SMagain")
	if code, body := reply(again, signTwilio(authToken, publicURL, again)); code != http.StatusOK || !strings.Contains(body, "did not make") {
		t.Fatalf("a second reply: %d %s", code, body)
	}
	cmds := r.deniedTwice(t)
	var channels []string
	for _, rec := range kcatConsume(t, r.brokers, topics.CustomerAnswers) {
		var a topics.CustomerAnswer
		json.Unmarshal([]byte(rec.Value), &a)
		channels = append(channels, a.Channel)
	}
	if !slices.Equal(channels, []string{"sms", "sms"}) {
		t.Fatalf("customer answers on channels %v, want two by sms (the replay recorded nothing)", channels)
	}
	ref := regexp.MustCompile(`Ref (\S+)\)`).FindStringSubmatch(twiml)
	for _, cmd := range cmds {
		if ref == nil || cmd.AlertID != ref[1] {
			t.Fatalf("payment command %+v, the reply answered %v", cmd, ref)
		}
	}
	waitFor(t, 30*time.Second, "the label", func() bool { return len(kcatConsume(t, r.brokers, topics.Labels)) >= 1 })
	labels := kcatConsume(t, r.brokers, topics.Labels)
	var l topics.Label
	if len(labels) != 1 || json.Unmarshal([]byte(labels[0].Value), &l) != nil || l.Verdict != topics.VerdictFraud ||
		l.Source != "customer" || l.AlertID != ref[1] || "acct_reply/"+l.PaymentID != labels[0].Key {
		t.Fatalf("labels %+v, want one fraud label for the answered payment", labels)
	}
	if strings.Contains(r.Stderr()+r.Stdout(), phone) {
		t.Fatal("the log shows the customer's phone number")
	}
}
