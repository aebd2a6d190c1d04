package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RuleType is the kind of measurement a rule makes.
type RuleType string

// The rule types of the rules file.
const (
	TypeAmount   RuleType = "amount"   // this payment's amount
	TypeCount    RuleType = "count"    // the account's payments in the window, this one included
	TypeSum      RuleType = "sum"      // the total amount of the account's payments in the window
	TypeDistinct RuleType = "distinct" // distinct non-empty values of a field in the window
	// TypeList fires when a field of the payment is on a list (a file beside the rules, or the lists topic).
	TypeList RuleType = "list"
	// TypeDeviation compares the amount with the account's own running mean and standard deviation.
	TypeDeviation RuleType = "deviation"
	// TypeTravel fires when the distance from the account's previous payment could not be covered in the time
	// between them.
	TypeTravel RuleType = "travel"
	// TypeExpression is a CEL expression over the payment and the account's aggregates.
	TypeExpression RuleType = "expression"
)

var ruleTypes = "amount, count, sum, distinct, list, deviation, travel, expression"

// Mode says what a rule's firing does.
type Mode string

// The modes. A shadow rule is evaluated and counted in metrics but never adds to a score, so a new rule can be
// tried on live traffic before it alerts anyone.
const (
	ModeLive   Mode = "live"
	ModeShadow Mode = "shadow"
)

// Field names a payment attribute that a distinct rule can count.
type Field int

// The countable fields, in the order the state stores them.
const (
	FieldCountry Field = iota
	FieldMerchantID
	FieldMerchantCategory
	FieldCardID
	FieldDeviceID
	FieldIP
	FieldAccountID // last, so that states written before it existed decode unchanged
	numFields
)

var fieldNames = [numFields]string{"country", "merchant_id", "merchant_category", "card_id", "device_id", "ip", "account_id"}

// groupable are the fields a count, sum or distinct rule can group by instead of the account.
var groupable = []Field{FieldCardID, FieldDeviceID, FieldIP, FieldMerchantID}

func (f Field) String() string { return fieldNames[f] }

// of is the payment's value of the field.
func (f Field) of(p *Payment) string {
	switch f {
	case FieldCountry:
		return p.Country
	case FieldMerchantID:
		return p.MerchantID
	case FieldMerchantCategory:
		return p.MerchantCategory
	case FieldCardID:
		return p.CardID
	case FieldDeviceID:
		return p.DeviceID
	case FieldAccountID:
		return p.AccountID
	default:
		return p.IP
	}
}

// Limits that keep the state of one account bounded whatever the account does.
const (
	DefaultMaxEvents = 256
	MinMaxEvents     = 16
	MaxMaxEvents     = 100_000
	// MaxDistinctLimit bounds a distinct rule's limit so that counting stays allocation-free and the value sets
	// kept for older, aggregated payments stay small.
	MaxDistinctLimit = 63
	// MaxRetention bounds how far back state reaches.
	MaxRetention = 31 * 24 * time.Hour
	// DefaultLateness is how late a payment may arrive and still count fully (state.lateness): offline terminals
	// and batch gateways deliver within the hour; later ones are counted as beyond it.
	DefaultLateness = time.Hour
)

// Rule is one validated rule.
type Rule struct {
	Name     string
	Type     RuleType
	Limit    int64         // amount and sum: minor units of Currency; count and distinct: a number
	Score    int           // added to the payment's risk score when the rule fires
	Window   time.Duration // count, sum, distinct
	Field    Field         // distinct
	Currency string        // amount and sum: the currency Limit is in and amounts are converted to
	Line     int           // where the rule starts in its file

	Mode     Mode          // live (default) or shadow
	Cooldown time.Duration // after alerting an account, the rule stays quiet for that account this long

	List string // list: the list the field's value is looked up in (Field says which field)

	Factor      float64 // deviation: how many standard deviations above the mean fires
	MinPayments int64   // deviation: how many payments the baseline needs before the rule can fire

	MaxSpeed    float64 // travel: km/h
	MinDistance float64 // travel: km; closer than this never fires (country centroids are approximate)

	Expr string      // expression: the CEL source
	prog *expression // expression: the checked program

	// By groups a count, sum or distinct rule by another field than the account (card, device, IP, merchant):
	// "more than 3 accounts used this device in 1h". Grouped is false for per-account rules.
	By      Field
	Grouped bool
}

// Thresholds turn a score into an action.
type Thresholds struct {
	Review int
	Block  int
}

// Ruleset is a validated rules file. It is immutable once loaded; hot reload swaps whole rulesets.
type Ruleset struct {
	Source string // the file it came from
	Digest string // identifies the content (rules file and list files); alerts carry it
	// Number is the version on the rules topic (see rules/registry); 0 for a ruleset read from a file only.
	Number     int
	Thresholds Thresholds
	Base       string             // the base currency of Rates
	Rates      map[string]float64 // value of one unit of a currency in units of Base
	Retention  time.Duration      // how far back per-account state reaches: at least the longest window plus Lateness
	// Lateness is how far behind its account's newest payment a payment may arrive and still be scored over a
	// complete window and re-score the payments it affects (see State.rescore).
	Lateness  time.Duration
	MaxEvents int // exact payments kept per account before older ones are aggregated
	Rules     []Rule
	// Lists are the file-backed lists the rules use, by name; the detector adds the lists topic's entries.
	Lists map[string]map[string]struct{}
	// Allow suppresses an alert for a payment whose field value is on one of these lists.
	Allow []AllowEntry
	// Bundle is the rules file and every file it refers to: what a push publishes, so that a detector on
	// another machine builds exactly the same ruleset.
	Bundle Bundle

	// distinctCap is how many distinct values an aggregated bucket keeps per field: one more than the largest
	// limit of any distinct rule is all a decision ever needs.
	distinctCap int
	digestHash  uint32 // hash32 of Digest, which records keep
	// rescoreSpan is the longest window of the rules a late payment re-scores: only payments stamped less than
	// that after it can change.
	rescoreSpan time.Duration
	hasExpr     bool
	groupFields []Field
}

// AllowEntry is one allow-list check: the payment's Field looked up in List.
type AllowEntry struct {
	List  string
	Field Field
}

// Bundle is a rules file with the list files it names, all as bytes: the unit that is validated, versioned and
// pushed.
type Bundle struct {
	Name  string            `json:"name"`  // the rules file's path, for messages
	Data  []byte            `json:"data"`  // the rules file
	Files map[string][]byte `json:"files"` // list files by the path the rules file gives, relative to it
}

// Digest identifies a bundle's content.
func (b Bundle) Digest() string {
	h := sha256.New()
	h.Write(b.Data)
	for _, k := range slices.Sorted(maps.Keys(b.Files)) {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", k, len(b.Files[k]))
		h.Write(b.Files[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// ParseDuration is time.ParseDuration plus a "d" suffix for days, which windows and retentions often want.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// FormatDuration prints a duration the way a rules file writes it: 5m, 1h30m, 2d.
func FormatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	s = strings.Replace(s, "h0m", "h", 1)
	return s
}
