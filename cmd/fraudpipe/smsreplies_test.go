package main

import (
	"context"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/console"
	"github.com/fraudpipe/fraudpipe/notifier"
)

// The SMS reply webhook is off without its settings, and half of them is refused with the missing half named:
// a webhook that cannot check signatures, or checks them over the wrong URL, would refuse every reply.
func TestSMSRepliesNeedTheTokenTheURLAndTheConfirmKey(t *testing.T) {
	ctx := context.Background()
	t.Setenv(envTwilioAuthToken, "")
	cc := &console.Config{}
	if err := startSMSReplies(ctx, nil, deps{}, cc, ""); err != nil || cc.SMSReplies != nil {
		t.Fatalf("without settings: %v %v", err, cc.SMSReplies)
	}
	if err := startSMSReplies(ctx, nil, deps{}, cc, "https://bank.example/sms/reply"); err == nil || !strings.Contains(err.Error(), envTwilioAuthToken) {
		t.Fatalf("a URL without the token: %v", err)
	}
	t.Setenv(envTwilioAuthToken, "token")
	if err := startSMSReplies(ctx, nil, deps{}, cc, ""); err == nil || !strings.Contains(err.Error(), "--sms-reply-url") {
		t.Fatalf("the token without a URL: %v", err)
	}
	if err := startSMSReplies(ctx, nil, deps{}, cc, "https://bank.example/sms/reply"); err == nil || !strings.Contains(err.Error(), notifier.EnvConfirmKey) {
		t.Fatalf("without the confirmation key: %v", err)
	}
}
