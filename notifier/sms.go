package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// smsSender speaks Twilio's Messages API: POST {base}/2010-04-01/Accounts/{sid}/Messages.json with Basic auth
// and form fields To, From, Body. Any compatible provider (or a test server) can stand behind BaseURL.
type smsSender struct {
	cfg    *SMSConfig
	client *http.Client
}

// NewSMSSender returns a Sender for a Twilio-compatible SMS API.
func NewSMSSender(cfg *SMSConfig) Sender {
	return &smsSender{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}
}

func (s *smsSender) Send(ctx context.Context, m *Message) error {
	form := url.Values{"To": {m.To}, "From": {s.cfg.From}, "Body": {m.Text}}
	endpoint := strings.TrimRight(s.cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(s.cfg.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sms request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.Token)
	resp, err := s.client.Do(req)
	if err != nil {
		return networkError(err, true)
	}
	defer resp.Body.Close()
	return httpOutcome("sms", resp)
}

// httpOutcome classifies a provider's HTTP answer: 2xx sent; 429 and 5xx temporary (honouring Retry-After);
// other 4xx permanent, with the provider's message (Twilio: {code, message}) in the error.
func httpOutcome(channel string, resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var twilio struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	detail := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &twilio) == nil && twilio.Message != "" {
		detail = fmt.Sprintf("%s (code %d)", twilio.Message, twilio.Code)
	}
	err := fmt.Errorf("%s provider answered %s: %s", channel, resp.Status, detail)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		t := &TemporaryError{Err: err}
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs >= 0 {
			t.RetryAfter = time.Duration(secs) * time.Second
		}
		return t
	}
	return err
}
