package rules

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// wirePayment is a payment as decoded, before validation. Amount and Timestamp stay text so that 12.5, "125" and
// 1e3 are rejected instead of being coerced, and a bad timestamp is reported as such.
type wirePayment struct {
	ID, AccountID, Amount, Currency, Timestamp                  string
	MerchantID, MerchantCategory, Country, CardID, DeviceID, IP string
	Lat, Lon                                                    *float64
}

// The members of a payment on the wire, numbered in the order of wireNames.
const (
	wID = iota
	wAccountID
	wAmount
	wCurrency
	wTimestamp
	wMerchantID
	wMerchantCategory
	wCountry
	wCardID
	wDeviceID
	wIP
	wLat
	wLon
	wMembers
)

var wireNames = [wMembers]string{"id", "account_id", "amount", "currency", "timestamp", "merchant_id",
	"merchant_category", "country", "card_id", "device_id", "ip", "lat", "lon"}

// foldedWireNames are wireNames without '_' and '-', for matching names the way JSON v2's
// MatchCaseInsensitiveNames does: ignoring case, underscores and dashes.
var foldedWireNames = func() (f [wMembers][]byte) {
	for i, n := range wireNames {
		f[i] = []byte(strings.ReplaceAll(n, "_", ""))
	}
	return f
}()

// wireMember returns the member a name means, or -1 for a member payments do not have (ignored).
func wireMember(name []byte) int {
	switch string(name) { // the spelling every producer uses; compiled to comparisons, no allocation
	case "id":
		return wID
	case "account_id":
		return wAccountID
	case "amount":
		return wAmount
	case "currency":
		return wCurrency
	case "timestamp":
		return wTimestamp
	case "merchant_id":
		return wMerchantID
	case "merchant_category":
		return wMerchantCategory
	case "country":
		return wCountry
	case "card_id":
		return wCardID
	case "device_id":
		return wDeviceID
	case "ip":
		return wIP
	case "lat":
		return wLat
	case "lon":
		return wLon
	}
	var buf [64]byte
	folded := buf[:0]
	for _, c := range name {
		if c != '_' && c != '-' {
			folded = append(folded, c)
		}
	}
	for i, n := range foldedWireNames {
		if bytes.EqualFold(folded, n) {
			return i
		}
	}
	return -1
}

// paymentJSON is how payments are read: JSON v2 (go-json-experiment, the code that becomes encoding/json/v2),
// stricter than encoding/json where strictness protects the windows. A payment naming a member twice is rejected
// rather than silently taking the last value (a producer-side check and the detector would otherwise read
// different amounts), and invalid UTF-8 is rejected rather than replaced. Names still match case-insensitively,
// as they did with encoding/json, so producers that capitalised them keep working.
//
// Repeated names are checked by UnmarshalJSONFrom rather than by jsontext (hence AllowDuplicateNames): its
// table of the names seen in each object cost more than the rest of the parsing.
var paymentJSON = json.JoinOptions(json.MatchCaseInsensitiveNames(true), jsontext.AllowDuplicateNames(true))

// UnmarshalJSONFrom decodes a payment member by member, with the semantics json.Unmarshal with
// MatchCaseInsensitiveNames has on a plain struct of these members (a differential fuzz test holds it to that).
// jsontext still does the parsing and checks syntax and UTF-8. What it replaces is the reflective struct decoding,
// which was two thirds of decoding a payment and a tenth of the detector's CPU: finding each member's field by
// name, setting it through reflection, and one string allocation per member. Here the strings of a payment share
// one allocation.
func (w *wirePayment) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	switch k := tok.Kind(); k {
	case 'n':
		*w = wirePayment{} // caught through the required members
		return nil
	case '{':
	default:
		return &InvalidPaymentError{Reason: ReasonBadType, Detail: fmt.Sprintf("expected an object, got %s", k)}
	}
	var (
		seen    uint32
		text    = make([]byte, 0, 256) // every string member, unquoted, back to back
		spans   [wMembers][2]int       // where each string member lies in text
		nameBuf [64]byte
		unknown []string // names of members payments do not have, seen so far
	)
	for d.PeekKind() != '}' {
		quoted, err := d.ReadValue()
		if err != nil {
			return err
		}
		name, err := unquote(nameBuf[:0], quoted) // copied: the next read may reuse the decoder's buffer
		if err != nil {
			return err
		}
		m := wireMember(name)
		if m < 0 {
			// A member payments do not have is ignored, but it must be valid JSON without repeated names, and
			// not repeat another such member.
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			if !v.IsValid() || slices.Contains(unknown, string(name)) {
				return &InvalidPaymentError{Reason: ReasonNotJSON, Detail: fmt.Sprintf("member %q: repeated name", string(name))}
			}
			unknown = append(unknown, string(name))
			continue
		}
		if seen&(1<<m) != 0 { // named twice, maybe under two spellings ("id" and "ID")
			return &InvalidPaymentError{Reason: ReasonNotJSON, Detail: fmt.Sprintf("member %q: repeated name", string(name))}
		}
		seen |= 1 << m
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		badType := func(want string) error {
			return &InvalidPaymentError{Reason: ReasonBadType, Field: string(name), Detail: fmt.Sprintf("expected %s, got %s", want, v.Kind())}
		}
		switch k := v.Kind(); {
		case m == wLat || m == wLon:
			f := &w.Lat
			if m == wLon {
				f = &w.Lon
			}
			switch k {
			case 'n':
				*f = nil
			case '0':
				x, err := strconv.ParseFloat(string(v), 64)
				if err != nil {
					return badType("float64")
				}
				*f = &x
			default:
				return badType("float64")
			}
		case m == wAmount: // any JSON value: validated with the other members
			lo := len(text)
			text = append(text, v...)
			spans[m] = [2]int{lo, len(text)}
		case k == 'n':
			spans[m] = [2]int{}
		case k == '"':
			lo := len(text)
			if text, err = unquote(text, v); err != nil {
				return err
			}
			spans[m] = [2]int{lo, len(text)}
		default:
			return badType("string")
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return err
	}
	w.setText(string(text), &spans)
	return nil
}

// setText sets the string members from text, where spans says each one lies; the amount is kept as text too.
func (w *wirePayment) setText(text string, spans *[wMembers][2]int) {
	str := func(m int) string { return text[spans[m][0]:spans[m][1]] }
	w.ID, w.AccountID, w.Amount, w.Currency, w.Timestamp = str(wID), str(wAccountID), str(wAmount), str(wCurrency), str(wTimestamp)
	w.MerchantID, w.MerchantCategory, w.Country = str(wMerchantID), str(wMerchantCategory), str(wCountry)
	w.CardID, w.DeviceID, w.IP = str(wCardID), str(wDeviceID), str(wIP)
}

// unquote appends the JSON string quoted, which jsontext has validated, to dst without its quotes and escapes.
func unquote(dst []byte, quoted jsontext.Value) ([]byte, error) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return append(dst, quoted[1:len(quoted)-1]...), nil
	}
	return jsontext.AppendUnquote(dst, quoted)
}

// scanPlain decodes a payment in the shape producers send, without jsontext: one flat object whose names and
// string values are printable ASCII without escapes, whose other values are numbers or null, and whose members
// are all payment members, each named once. That is nearly every payment, and scanning it directly costs a
// fraction of jsontext's tokenizer, which was a tenth of the detector's CPU. Anything else, valid or not, reports
// false and is decoded by UnmarshalJSONFrom, which also words the errors; so scanPlain never accepts what that
// rejects, nor decodes differently (FuzzDecodeWireMatchesStructDecoding holds decodeWire, both paths, to JSON v2's
// struct decoding).
func (w *wirePayment) scanPlain(b []byte) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	var (
		seen  uint32
		spans [wMembers][2]int // string members' contents, and the amount's whole value, as offsets into b
	)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			lo, hi, ok := plainString(b, i)
			if !ok {
				return false
			}
			m := wireMember(b[lo:hi])
			if m < 0 || seen&(1<<m) != 0 {
				return false // an unknown or repeated member: UnmarshalJSONFrom checks and reports those
			}
			seen |= 1 << m
			i = skipSpace(b, hi+1)
			if i == len(b) || b[i] != ':' {
				return false
			}
			i = skipSpace(b, i+1)
			if i == len(b) {
				return false
			}
			switch c := b[i]; {
			case c == '"':
				lo, hi, ok := plainString(b, i)
				if !ok || m == wLat || m == wLon {
					return false
				}
				if m == wAmount {
					lo, hi = lo-1, hi+1 // the amount keeps its quotes, to be rejected as text
				}
				spans[m] = [2]int{lo, hi}
				i = hi
				if m != wAmount {
					i++
				}
			case c == 'n':
				if len(b)-i < 4 || string(b[i:i+4]) != "null" {
					return false
				}
				if m == wAmount {
					spans[m] = [2]int{i, i + 4}
				}
				i += 4
			case c == '-' || c >= '0' && c <= '9':
				end := numberEnd(b, i)
				if end < 0 {
					return false
				}
				switch m {
				case wAmount:
					spans[m] = [2]int{i, end}
				case wLat, wLon:
					x, err := strconv.ParseFloat(string(b[i:end]), 64) // no allocation: the conversion does not escape
					if err != nil {
						return false
					}
					if m == wLat {
						w.Lat = &x
					} else {
						w.Lon = &x
					}
				default:
					return false // a number where a string belongs
				}
				i = end
			default:
				return false // true, false, an object or an array
			}
			i = skipSpace(b, i)
			if i == len(b) {
				return false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return false
	}
	// The members' text shares one allocation, as in UnmarshalJSONFrom.
	n := 0
	for _, sp := range spans {
		n += sp[1] - sp[0]
	}
	var sb strings.Builder
	sb.Grow(n)
	for m, sp := range spans {
		sb.Write(b[sp[0]:sp[1]])
		spans[m] = [2]int{sb.Len() - (sp[1] - sp[0]), sb.Len()}
	}
	w.setText(sb.String(), &spans)
	return true
}

// skipSpace returns the index of the first byte from i on that is not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reports where the contents of the string starting at b[i] lie, if it is a string of printable ASCII
// without escapes; b[hi] is then its closing quote.
func plainString(b []byte, i int) (lo, hi int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	j := i + 1
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	if j == len(b) || b[j] != '"' {
		return 0, 0, false // cut off, or an escape, control character or non-ASCII byte
	}
	return i + 1, j, true
}

// plainByte tells the bytes a plain string holds: printable ASCII but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// numberEnd returns the end of the JSON number starting at b[i], or -1 if the text there is not one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	digits := func(i int) int { // the end of a run of at least one digit, or -1
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// wires recycles what json.Unmarshal decodes into: passed as an interface, it would be allocated per payment.
var wires = sync.Pool{New: func() any { return new(wirePayment) }}

// decodeWire decodes a payment without validating it; every failure is an *InvalidPaymentError.
func decodeWire(b []byte) (wirePayment, error) {
	var w wirePayment
	if w.scanPlain(b) {
		return w, nil
	}
	wp := wires.Get().(*wirePayment)
	*wp = wirePayment{}
	err := json.Unmarshal(b, wp, paymentJSON)
	w = *wp // whatever scanPlain set before it gave up is replaced
	wires.Put(wp)
	if err == nil {
		return w, nil
	}
	var ip *InvalidPaymentError
	if errors.As(err, &ip) {
		return wirePayment{}, ip
	}
	return wirePayment{}, &InvalidPaymentError{Reason: ReasonNotJSON, Detail: err.Error()}
}
