// Package logging builds fraudpipe's slog handlers: text or JSON, with personal data masked in every message
// and attribute, so that a card number, email address or phone number that reaches a log line by any path is
// never written in full.
package logging

import (
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// New returns a logger writing to w in format "text" or "json" at the given level.
func New(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: replaceAttr}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// ParseLevel accepts debug, info, warn and error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != "" {
			a.Value = slog.StringValue(Mask(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(Mask(err.Error()))
		}
	}
	return a
}

var (
	// Card numbers: 13 to 19 digits in one run, or in groups of four (the last one shorter) or Amex's 4-6-5,
	// separated by single spaces or dashes, wherever they stand (inside an id such as pay_4111111111111111 too,
	// or after a date or an amount). Only those that pass the Luhn check are masked, so amounts, offsets and ids
	// made of digits stay readable.
	panRE = regexp.MustCompile(`\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{5}`)
	// Phone numbers in E.164 form (+ and 8 to 15 digits), the form SMS providers take.
	phoneRE = regexp.MustCompile(`\+\d{7,14}\b`)
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
)

// Mask replaces card numbers (all but the last four digits), email addresses (see MaskEmail) and
// phone numbers (all but the country prefix and the last three digits) in s.
func Mask(s string) string {
	if !strings.ContainsAny(s, "0123456789@") {
		return s
	}
	// Emails first and whole, so that digits in their local part are not masked as a card or phone first and
	// the address is still recognisable; the text between them gets the phone and card masks.
	var b strings.Builder
	last := 0
	for _, m := range emailRE.FindAllStringIndex(s, -1) {
		b.WriteString(maskNumbers(s[last:m[0]]))
		b.WriteString(MaskEmail(s[m[0]:m[1]]))
		last = m[1]
	}
	b.WriteString(maskNumbers(s[last:]))
	return b.String()
}

func maskNumbers(s string) string {
	if !strings.ContainsAny(s, "0123456789") {
		return s
	}
	// Phones first: an E.164 number is also 13 to 15 digits and may pass the Luhn check by chance.
	s = phoneRE.ReplaceAllStringFunc(s, MaskPhone)
	var b strings.Builder
	last := 0
	for _, m := range panRE.FindAllStringIndex(s, -1) {
		// Part of a longer run of digits or letters is no card number: a hex id such as alert_84853292973101780e11
		// holds digit runs that pass the Luhn check by chance (RE2 has no look-around to say so in the pattern).
		if m[0] > 0 && isAlnum(s[m[0]-1]) || m[1] < len(s) && isAlnum(s[m[1]]) {
			continue
		}
		digits := strings.NewReplacer(" ", "", "-", "").Replace(s[m[0]:m[1]])
		if len(digits) < 13 || len(digits) > 19 || !luhn(digits) {
			continue
		}
		b.WriteString(s[last:m[0]])
		b.WriteString(strings.Repeat("*", len(digits)-4) + digits[len(digits)-4:])
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// MaskEmail keeps the first letter, a short digest of the local part and the domain: j***(3fa1)@example.com. The
// digest tells two addresses apart in the logs (two accounts whose ids are email addresses, say) without
// revealing either; the parenthesis keeps a masked address from being masked again by Mask.
func MaskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	if at < 1 {
		return "***"
	}
	h := fnv.New32a()
	h.Write([]byte(e[:at]))
	return fmt.Sprintf("%s***(%04x)%s", e[:1], h.Sum32()&0xffff, e[at:])
}

// MaskPhone keeps the + and first two digits and the last three: +49*******789.
func MaskPhone(p string) string {
	if len(p) < 7 {
		return "***"
	}
	return p[:3] + strings.Repeat("*", len(p)-6) + p[len(p)-3:]
}

func luhn(digits string) bool {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
