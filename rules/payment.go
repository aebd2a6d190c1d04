// Package rules is fraudpipe's pure decision logic: payments and their validation, the rules file, the per-account
// window state and the evaluation of a payment against both. Nothing in here talks to Kafka, reads a clock or
// logs; the processors translate between goka and this package.
package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/currency"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Payment is the payment event of the payments topic; its wire form is defined in package topics, its validation
// here (ParsePayment).
type Payment = topics.Payment

// Bounds on a payment. A hostile or broken producer must not be able to blow up state or sums with one record.
const (
	MaxPaymentBytes = 16 << 10 // a payment is a few hundred bytes; anything this large is not one
	MaxFieldLen     = 128      // ids, countries, IPs: generous, but bounded
	MaxAmount       = 1e15     // minor units; keeps sums of a full window far from int64 overflow
)

// Reasons a payment is rejected. They label the rejection metric and the dead-letter header, so they are a
// small fixed set rather than free text.
const (
	ReasonTooLarge     = "too_large"
	ReasonNotJSON      = "not_json"
	ReasonMissingField = "missing_field"
	ReasonBadType      = "bad_type"
	ReasonBadAmount    = "bad_amount"
	ReasonBadCurrency  = "bad_currency"
	ReasonBadTimestamp = "bad_timestamp"
	ReasonFieldTooLong = "field_too_long"
	ReasonBadLocation  = "bad_location"
	ReasonBadID        = "bad_id"
)

// InvalidPaymentError says why a payment was rejected: Reason is one of the Reason constants, Field names the
// offending field where there is one.
type InvalidPaymentError struct {
	Reason string
	Field  string
	Detail string
}

func (e *InvalidPaymentError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid payment (%s): %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("invalid payment (%s): field %q: %s", e.Reason, e.Field, e.Detail)
}

// RejectReason returns the reason code of an InvalidPaymentError inside err, or "" when err is not one.
func RejectReason(err error) string {
	var ip *InvalidPaymentError
	if errors.As(err, &ip) {
		return ip.Reason
	}
	return ""
}

// ParsePayment decodes and validates one payment. Every failure is an *InvalidPaymentError.
func ParsePayment(b []byte) (Payment, error) {
	if len(b) > MaxPaymentBytes {
		return Payment{}, &InvalidPaymentError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", len(b), MaxPaymentBytes)}
	}
	w, err := decodeWire(b)
	if err != nil {
		return Payment{}, err
	}
	// "null" decodes to the zero struct: it is caught through the required fields below.
	p := Payment{
		ID: w.ID, AccountID: w.AccountID, Currency: w.Currency,
		MerchantID: w.MerchantID, MerchantCategory: w.MerchantCategory, Country: w.Country,
		CardID: w.CardID, DeviceID: w.DeviceID, IP: w.IP, Lat: w.Lat, Lon: w.Lon,
	}
	for _, f := range []struct{ name, v string }{
		{"id", p.ID}, {"account_id", p.AccountID}, {"currency", p.Currency}, {"timestamp", w.Timestamp},
	} {
		if f.v == "" {
			return Payment{}, &InvalidPaymentError{Reason: ReasonMissingField, Field: f.name, Detail: "required"}
		}
	}
	if w.Amount == "" || w.Amount == "null" {
		return Payment{}, &InvalidPaymentError{Reason: ReasonMissingField, Field: "amount", Detail: "required"}
	}
	amount, err := strconv.ParseInt(w.Amount, 10, 64)
	if err != nil {
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadAmount, Field: "amount", Detail: fmt.Sprintf("%s is not an integer number of minor units", w.Amount)}
	}
	if amount <= 0 || amount > MaxAmount {
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadAmount, Field: "amount", Detail: fmt.Sprintf("%d is outside 1..%d", amount, int64(MaxAmount))}
	}
	p.Amount = amount
	if err := validCurrency(p.Currency); err != nil {
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadCurrency, Field: "currency", Detail: err.Error()}
	}
	ts, err := time.Parse(time.RFC3339Nano, w.Timestamp)
	if err != nil {
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadTimestamp, Field: "timestamp", Detail: fmt.Sprintf("%q is not RFC 3339", w.Timestamp)}
	}
	p.Timestamp = ts.UTC()
	switch {
	case (p.Lat == nil) != (p.Lon == nil):
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadLocation, Field: "lat", Detail: "lat and lon come together"}
	case p.Lat != nil && (*p.Lat < -90 || *p.Lat > 90):
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadLocation, Field: "lat", Detail: fmt.Sprintf("%g is outside -90..90", *p.Lat)}
	case p.Lon != nil && (*p.Lon < -180 || *p.Lon > 180):
		return Payment{}, &InvalidPaymentError{Reason: ReasonBadLocation, Field: "lon", Detail: fmt.Sprintf("%g is outside -180..180", *p.Lon)}
	}
	for _, f := range []struct{ name, v string }{{"id", p.ID}, {"account_id", p.AccountID}} {
		if strings.IndexFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return Payment{}, &InvalidPaymentError{Reason: ReasonBadID, Field: f.name, Detail: "contains a control character"}
		}
	}
	for _, f := range []struct{ name, v string }{
		{"id", p.ID}, {"account_id", p.AccountID}, {"merchant_id", p.MerchantID},
		{"merchant_category", p.MerchantCategory}, {"country", p.Country}, {"card_id", p.CardID},
		{"device_id", p.DeviceID}, {"ip", p.IP},
	} {
		if len(f.v) > MaxFieldLen {
			return Payment{}, &InvalidPaymentError{Reason: ReasonFieldTooLong, Field: f.name, Detail: fmt.Sprintf("%d bytes, limit %d", len(f.v), MaxFieldLen)}
		}
	}
	return p, nil
}

// validCurrency accepts exactly the ISO 4217 codes, written in upper case.
func validCurrency(c string) error {
	if len(c) != 3 || strings.ToUpper(c) != c {
		return fmt.Errorf("%q is not three upper-case letters", c)
	}
	if _, err := currency.ParseISO(c); err != nil {
		return fmt.Errorf("%q is not an ISO 4217 currency", c)
	}
	return nil
}

// MinorDigits returns how many decimal places the currency's minor unit has (2 for EUR, 0 for JPY, 3 for KWD).
func MinorDigits(code string) int {
	u, err := currency.ParseISO(code)
	if err != nil {
		return 2
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale
}

// FormatAmount renders minor units as a person reads them: FormatAmount(125050, "EUR") is "1,250.50 EUR".
func FormatAmount(minor int64, code string) string {
	digits := MinorDigits(code)
	neg := minor < 0
	if neg {
		minor = -minor
	}
	div := int64(1)
	for range digits {
		div *= 10
	}
	whole, frac := minor/div, minor%div
	s := strconv.FormatInt(whole, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if digits > 0 {
		fmt.Fprintf(&b, ".%0*d", digits, frac)
	}
	b.WriteByte(' ')
	b.WriteString(code)
	return b.String()
}
