package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	cases := []struct{ in, want string }{
		{"card 4111 1111 1111 1111 used", "card ************1111 used"},
		{"card 4111-1111-1111-1111", "card ************1111"},
		{"card=5500005555555559", "card=************5559"},
		{"offset 1234567890123456 is not a card", "offset 1234567890123456 is not a card"}, // fails Luhn
		{"amount 125050 EUR", "amount 125050 EUR"},
		{"to jane.doe@example.com", "to " + MaskEmail("jane.doe@example.com")},
		{"payment pay_4111111111111111 rejected", "payment pay_************1111 rejected"},
		{"20-digit 41111111111111111111", "20-digit 41111111111111111111"},
		// A hex id's digit run may pass Luhn by chance (this one does): it is no card number.
		{"alert=alert_84853292973101780e1172c8 logged", "alert=alert_84853292973101780e1172c8 logged"},
		{"sms +4915112345678 sent", "sms +49********678 sent"},
		{"nothing here", "nothing here"},
		{"2026-12-05 4111 1111 1111 1111", "2026-12-05 ************1111"},           // card after a date
		{"amount 100 4111111111111111", "amount 100 ************1111"},              // card after an amount
		{"pan 6011000990139424", "pan ************9424"},                            // 19-digit card
		{"amex 3782 822463 10005", "amex ***********0005"},                          // amex 4-6-5
		{"ts 1764928219123456789", "ts 1764928219123456789"},                        // nanosecond timestamp
		{"4111111111111111@example.com", MaskEmail("4111111111111111@example.com")}, // card as an email's local part
		{"u+4915112345678@example.com", MaskEmail("u+4915112345678@example.com")},   // phone in an email's local part
	}
	for _, c := range cases {
		if got := Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLoggerMasksMessagesAttributesAndErrors(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("paid with 4111111111111111", "email", "jane@example.com", "err", errors.New("rejected +4915112345678"))
	out := buf.String()
	for _, leak := range []string{"4111111111111111", "jane@example.com", "+4915112345678"} {
		if strings.Contains(out, leak) {
			t.Fatalf("log line leaks %s: %s", leak, out)
		}
	}
	for _, kept := range []string{"************1111", MaskEmail("jane@example.com"), "+49********678"} {
		if !strings.Contains(out, kept) {
			t.Fatalf("log line lacks %s: %s", kept, out)
		}
	}
}

// An account id that is an email address stays recognisable in the logs: its first letter and domain are kept, and
// two such accounts with the same first letter and domain are still told apart.
func TestMaskedEmailsStayDistinct(t *testing.T) {
	a, b := MaskEmail("eva@example.com"), MaskEmail("emil@example.com")
	if a == b || !strings.HasPrefix(a, "e***") || !strings.HasSuffix(a, "@example.com") || strings.Contains(a, "eva") {
		t.Fatalf("masked %q and %q", a, b)
	}
	if MaskEmail("eva@example.com") != a {
		t.Fatal("the same address masks differently")
	}
	if Mask(a) != a {
		t.Fatalf("a masked address is masked again: %q", Mask(a))
	}
	if got := Mask("account=eva@example.com"); got != "account="+a {
		t.Fatalf("Mask = %q", got)
	}
}
