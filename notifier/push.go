package notifier

import (
	"context"
	"fmt"
	"net/http"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// pushSender sends Web Push messages (RFC 8030, encrypted per RFC 8291, VAPID per RFC 8292). The endpoint comes
// from the customer's subscription.
type pushSender struct {
	cfg    *PushConfig
	client *http.Client
}

// NewPushSender returns a Sender for Web Push.
func NewPushSender(cfg *PushConfig) Sender {
	return &pushSender{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}}
}

func (s *pushSender) Send(ctx context.Context, m *Message) error {
	if m.Push == nil {
		return fmt.Errorf("push: no subscription")
	}
	sub := &webpush.Subscription{Endpoint: m.Push.Endpoint, Keys: webpush.Keys{P256dh: m.Push.Keys.P256dh, Auth: m.Push.Keys.Auth}}
	urgency := webpush.UrgencyNormal
	if m.Urgent {
		urgency = webpush.UrgencyHigh
	}
	resp, err := webpush.SendNotificationWithContext(ctx, []byte(m.Text), sub, &webpush.Options{
		HTTPClient: s.client, Subscriber: s.cfg.Subscriber, VAPIDPublicKey: s.cfg.VAPIDPublicKey,
		VAPIDPrivateKey: s.cfg.PrivateKey, TTL: int(s.cfg.TTL.Seconds()), Urgency: urgency,
		// The Topic header makes the push service replace a pending message for the same alert instead of
		// showing it twice.
		Topic: m.Topic,
	})
	if err != nil {
		return networkError(err, true)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return fmt.Errorf("push subscription gone (%s)", resp.Status)
	}
	return httpOutcome("push", resp)
}
