package console

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/confirm"
	"github.com/fraudpipe/fraudpipe/topics"
)

// A customer follows the link in a message: the page asks, the answer is recorded once per submission with what
// the signed link says; forged, expired and unknown answers record nothing and say nothing about why.
func TestTheConfirmationPage(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	signer, _ := confirm.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	var mu sync.Mutex
	var got []topics.CustomerAnswer
	_, ts := newTestConsole(t, Config{Users: testUsers(t), Confirm: signer, Now: func() time.Time { return now },
		Answers: func(_ context.Context, a topics.CustomerAnswer) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, a)
			return nil
		}})
	link := confirm.Link{AlertID: "alert_9", AccountID: "acct_9", PaymentID: "pay_9", CardID: "card_9", Action: "block", Expires: now.Add(time.Hour).Unix()}
	tok := signer.Token(link)
	c := client(t)

	resp, body := get(t, c, ts.URL+"/confirm/"+tok)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Was this you?") || !strings.Contains(body, "alert_9") {
		t.Fatalf("the page: %d\n%s", resp.StatusCode, body)
	}
	post := func(token, answer string, headers ...string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+"/confirm/"+token, strings.NewReader(url.Values{"answer": {answer}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(tok, "denied"); code != http.StatusOK || !strings.Contains(body, "it was not you") || !strings.Contains(body, "card will be blocked") {
		t.Fatalf("denied: %d\n%s", code, body)
	}
	want := topics.CustomerAnswer{AlertID: "alert_9", AccountID: "acct_9", PaymentID: "pay_9", CardID: "card_9", Action: topics.ActionBlock,
		Answer: topics.AnswerDenied, Channel: "web", AnsweredAt: now}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}

	other, _ := confirm.NewSigner([]byte("another key, also thirty-two bytes long"))
	expired := link
	expired.Expires = now.Unix()
	for name, bad := range map[string]string{"forged": other.Token(link), "expired": signer.Token(expired), "garbage": "x.y"} {
		if code, body := post(bad, "confirmed"); code != http.StatusNotFound || !strings.Contains(body, "does not work") {
			t.Fatalf("%s link: %d\n%s", name, code, body)
		}
		if resp, _ := get(t, c, ts.URL+"/confirm/"+url.PathEscape(bad)); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s link page: %d", name, resp.StatusCode)
		}
	}
	if code, _ := post(tok, "maybe"); code != http.StatusBadRequest {
		t.Fatalf("an unknown answer: %d", code)
	}
	if code, _ := post(tok, "confirmed", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Fatalf("a cross-site answer: %d", code)
	}
	if len(got) != 1 {
		t.Fatalf("refused answers were recorded: %+v", got)
	}
}
