package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// reflectWire is the plain struct payments were decoded into before wirePayment.UnmarshalJSONFrom: JSON v2's own
// struct decoding, the reference that method is held to.
type reflectWire struct {
	ID               string         `json:"id"`
	AccountID        string         `json:"account_id"`
	Amount           jsontext.Value `json:"amount"`
	Currency         string         `json:"currency"`
	Timestamp        string         `json:"timestamp"`
	MerchantID       string         `json:"merchant_id"`
	MerchantCategory string         `json:"merchant_category"`
	Country          string         `json:"country"`
	CardID           string         `json:"card_id"`
	DeviceID         string         `json:"device_id"`
	IP               string         `json:"ip"`
	Lat              *float64       `json:"lat"`
	Lon              *float64       `json:"lon"`
}

// decodeReflect decodes b with JSON v2's struct decoding and classifies a failure as ParsePayment did with it.
func decodeReflect(b []byte) (w wirePayment, reason, field string) {
	var r reflectWire
	if err := json.Unmarshal(b, &r, json.MatchCaseInsensitiveNames(true)); err != nil {
		var se *json.SemanticError
		if errors.As(err, &se) && se.GoType != nil && se.JSONKind != 0 {
			return wirePayment{}, ReasonBadType, strings.TrimPrefix(string(se.JSONPointer), "/")
		}
		return wirePayment{}, ReasonNotJSON, ""
	}
	return wirePayment{ID: r.ID, AccountID: r.AccountID, Amount: string(r.Amount), Currency: r.Currency,
		Timestamp: r.Timestamp, MerchantID: r.MerchantID, MerchantCategory: r.MerchantCategory, Country: r.Country,
		CardID: r.CardID, DeviceID: r.DeviceID, IP: r.IP, Lat: r.Lat, Lon: r.Lon}, "", ""
}

func describeWire(w wirePayment) string {
	f := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	lat, lon := f(w.Lat), f(w.Lon)
	w.Lat, w.Lon = nil, nil
	return fmt.Sprintf("%+v lat=%s lon=%s", w, lat, lon)
}

// FuzzDecodeWireMatchesStructDecoding holds the hand-written member decoding to what JSON v2 does with the plain
// struct: the same members accepted, the same values, the same rejections with the same reason and field.
func FuzzDecodeWireMatchesStructDecoding(f *testing.F) {
	for _, s := range []string{
		`{"id":"pay_123","account_id":"acct_42","amount":125050,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","merchant_id":"m_17","merchant_category":"5732","country":"DE","card_id":"card_9","device_id":"dev_3","ip":"203.0.113.9","lat":52.5,"lon":13.4}`,
		`{"ID":"p","Account_ID":"a","Amount":7,"Currency":"EUR","Timestamp":"2026-11-22T10:00:00Z"}`,
		`{"ACCOUNTID":"a","account-id":"b"}`, `{"accountId":"a"}`, `{"timeſtamp":"x"}`, `{"\u0069d":"p","a\"b":1}`,
		`{"id":"a","ID":"b"}`, `{"id":"a","id":"b"}`, `{"x":1,"x":2}`, `{"x":1,"X":2}`, `{"x":{"a":1,"a":2}}`,
		`{"x":[{"a":1},{"a":2}]}`, `{"x":{"a":1},"y":{"a":1}}`, `{"id":5}`, `{"ID":true}`, `{"lat":"1"}`,
		`{"lat":1e400,"lon":0}`, `{"lat":null,"lon":-0.0}`, `{"lat":[]}`, `{"amount":null}`, `{"amount":[1, 2]}`,
		`{"amount":"12"}`, `{"amount": 1.5e3 }`, `{"id":null,"currency":null}`, `{"id":"a\u0000b\n"}`,
		"{\"id\":\"p\xff\"}", `{"id":5,`, `{"id":"p"} x`, ` { "id" : "p" } `, `{"id":`, `[1]`, `5`, `"x"`, ``,
		`null`, `{}`, `{"id":"p",}`, `{"id":"p"`, `{"a":1,"b":{"id":5}}`, `{"currency":{"code":"EUR"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantReason, wantField := decodeReflect(b)
		got, err := decodeWire(b)
		var reason, field string
		if err != nil {
			var ip *InvalidPaymentError
			if !errors.As(err, &ip) {
				t.Fatalf("%q: error %v is not an *InvalidPaymentError", b, err)
			}
			reason, field = ip.Reason, ip.Field
		}
		if reason != wantReason || field != wantField {
			t.Fatalf("%q: rejected as (%q, %q) by the member decoding (%v), as (%q, %q) by the struct decoding",
				b, reason, field, err, wantReason, wantField)
		}
		if g, w := describeWire(got), describeWire(want); g != w {
			t.Fatalf("%q: decoded\n%s\nthe struct decoding gives\n%s", b, g, w)
		}
	})
}

// Payments as producers write them take scanPlain's path (the speed of the detector depends on it), and decode as
// JSON v2's struct decoding does; anything unusual is left to UnmarshalJSONFrom.
func TestPlainPaymentsSkipTheTokenizer(t *testing.T) {
	for _, c := range []struct {
		in    string
		plain bool
	}{
		{`{"id":"pay_123","account_id":"acct_42","amount":125050,"currency":"EUR","timestamp":"2026-11-22T10:00:00Z","merchant_id":"m_17","merchant_category":"5732","country":"DE","card_id":"card_9","device_id":"dev_3","ip":"203.0.113.9","lat":52.5,"lon":-13.4e0}`, true},
		{" {\n\t\"ID\" : \"p\" ,\r\"Account_ID\":\"a\", \"amount\": \"7\" ,\"lat\":null,\"lon\":-0.0, \"ip\": null} \n", true},
		{`{}`, true},
		{`{"amount":null,"currency":""}`, true},
		{`{"id":"a\"b"}`, false},            // an escape
		{"{\"id\":\"caf\xc3\xa9\"}", false}, // not ASCII
		{"{\"id\":\"a\x01\"}", false},       // a control character: invalid JSON
		{`{"note":"x","id":"p"}`, false},    // a member payments do not have
		{`{"id":"a","ID":"b"}`, false},      // named twice
		{`{"id":5}`, false},                 // a number for a string
		{`{"lat":"1"}`, false},              // a string for a number
		{`{"lat":1e400}`, false},            // out of range
		{`{"amount":true}`, false},          // a literal other than null
		{`{"amount":{"v":1}}`, false},       // nested
		{`{"amount":01}`, false},            // not a JSON number
		{`{"amount":1.}`, false},            // not a JSON number
		{`{"amount":-}`, false},             // not a JSON number
		{`{"amount":nul}`, false},           // not null
		{`{"id":"p",}`, false},              // a trailing comma
		{`{"id":"p"} x`, false},             // trailing text
		{`{"id":"p"`, false},                // cut off
		{`{"id" "p"}`, false},               // no colon
		{`null`, false},
	} {
		var w wirePayment
		if got := w.scanPlain([]byte(c.in)); got != c.plain {
			t.Errorf("%q: scanPlain = %v, want %v", c.in, got, c.plain)
			continue
		}
		if !c.plain {
			continue
		}
		want, reason, _ := decodeReflect([]byte(c.in))
		if reason != "" {
			t.Fatalf("%q: the struct decoding rejects it (%s)", c.in, reason)
		}
		if g, w := describeWire(w), describeWire(want); g != w {
			t.Errorf("%q: scanPlain decoded\n%s\nthe struct decoding gives\n%s", c.in, g, w)
		}
	}
}
