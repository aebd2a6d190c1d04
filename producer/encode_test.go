package producer

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fraudpipe/fraudpipe/rules"
)

// Encode appends members by hand for speed; encoding/json's output for the same payment is the reference.
// Both must decode to the same payment, and for text that encoding/json does not escape for HTML they must be
// the same bytes.
func checkEncodeMatchesEncodingJSON(t *testing.T, p rules.Payment) {
	t.Helper()
	want, err := json.Marshal(p)
	if err != nil {
		t.Skipf("encoding/json cannot encode it either: %v", err)
	}
	got := Encode(p)
	var a, b rules.Payment
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("Encode wrote invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("Encode and encoding/json decode differently:\n%s\n%s", got, want)
	}
	plain := true // no member that encoding/json writes differently but equivalently
	for _, s := range []string{p.ID, p.AccountID, p.Currency, p.MerchantID, p.MerchantCategory, p.Country, p.CardID, p.DeviceID, p.IP} {
		plain = plain && utf8.ValidString(s) && !strings.ContainsAny(s, "<>&\u2028\u2029")
	}
	if plain && !bytes.Equal(got, want) {
		t.Fatalf("Encode and encoding/json differ:\n%s\n%s", got, want)
	}
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	g := NewGenerator(5, 2000, 0.05, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Hour)
	for range 5000 {
		checkEncodeMatchesEncodingJSON(t, g.Next())
	}
	f := func(v float64) *float64 { return &v }
	for _, p := range []rules.Payment{
		{},
		{ID: `quote " backslash \ slash /`, AccountID: "tab\tnewline\n\x00\x1f", Amount: -1, Currency: "€",
			Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", -3*3600))},
		{ID: "<script>&amp;", AccountID: "\u2028\u2029", Amount: math.MaxInt64, IP: "\xff\xfe invalid"},
		{ID: "geo", Lat: f(52.520008), Lon: f(-0.0000001)},
		{ID: "geo2", Lat: f(0), Lon: f(1e21)},
		{ID: "geo3", Lat: f(-90), Lon: f(179.99999999999997)},
	} {
		checkEncodeMatchesEncodingJSON(t, p)
	}
}

func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	f.Add("pay_1", "acct_1", int64(1250), "EUR", int64(1795000000), int64(5), "m_1", "5411", "DE", "card", "dev", "1.2.3.4", 52.5, 13.4, true)
	f.Add("<&>", "\u2028", int64(-5), "", int64(-62135596800), int64(0), "", "", "", "", "", "\xff", 1e-7, 1e22, false)
	f.Fuzz(func(t *testing.T, id, account string, amount int64, currency string, sec, nsec int64, merchant, mcc, country, card, device, ip string, lat, lon float64, geo bool) {
		if sec < -62135596800 || sec > 253402300799 || math.IsNaN(lat) || math.IsInf(lat, 0) || math.IsNaN(lon) || math.IsInf(lon, 0) {
			return // outside what JSON and RFC 3339 can express
		}
		p := rules.Payment{ID: id, AccountID: account, Amount: amount, Currency: currency,
			Timestamp: time.Unix(sec, nsec%1e9).UTC(), MerchantID: merchant, MerchantCategory: mcc, Country: country,
			CardID: card, DeviceID: device, IP: ip}
		if geo {
			p.Lat, p.Lon = &lat, &lon
		}
		checkEncodeMatchesEncodingJSON(t, p)
	})
}
