package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// RuleType is the kind of measurement a rule makes.
type RuleType string

// The rule types of the rules file.
const (
	TypeAmount   RuleType = "amount"   // this payment's amount
	TypeCount    RuleType = "count"    // the account's payments in the window, this one included
	TypeSum      RuleType = "sum"      // the total amount of the account's payments in the window
	TypeDistinct RuleType = "distinct" // distinct non-empty values of a field in the window
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
	numFields
)

var fieldNames = [numFields]string{"country", "merchant_id", "merchant_category", "card_id", "device_id", "ip"}

func (f Field) String() string { return fieldNames[f] }

func (p *Payment) field(f Field) string {
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
}

// Thresholds turn a score into an action.
type Thresholds struct {
	Review int
	Block  int
}

// Ruleset is a validated rules file. It is immutable once loaded; hot reload swaps whole rulesets.
type Ruleset struct {
	Source     string // the file it came from
	Version    string // a digest of the file's bytes: alerts carry it, so every alert says which rules produced it
	Thresholds Thresholds
	Base       string             // the base currency of Rates
	Rates      map[string]float64 // value of one unit of a currency in units of Base
	Retention  time.Duration      // how far back per-account state reaches: at least the longest window
	MaxEvents  int                // exact payments kept per account before older ones are aggregated
	Rules      []Rule

	// distinctCap is how many distinct values an aggregated bucket keeps per field: one more than the largest
	// limit of any distinct rule is all a decision ever needs.
	distinctCap int
}

// ValidationError is one problem in a rules file, located as precisely as the file allows.
type ValidationError struct {
	File  string
	Line  int
	Rule  string // empty for problems outside the rules list
	Field string // the YAML key
	Msg   string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadFile reads and validates a rules file.
func LoadFile(path string) (*Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a rules file's bytes; name is used in error messages. All problems are reported at once,
// joined, each a *ValidationError.
func Parse(name string, data []byte) (*Ruleset, error) {
	p := parser{file: name}
	rs := p.parse(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	sum := sha256.Sum256(data)
	rs.Source = name
	rs.Version = hex.EncodeToString(sum[:6])
	return rs, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(n *yaml.Node, rule, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &ValidationError{File: p.file, Line: line, Rule: rule, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// fields maps a YAML mapping's keys to their value nodes, reporting keys that are not allowed: a typo such as
// "limt" must not silently leave a rule without its limit.
func (p *parser) fields(n *yaml.Node, rule, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, "", "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		switch {
		case !known:
			p.errorf(k, rule, k.Value, "unknown field in %s (allowed: %s)", what, strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			p.errorf(k, rule, k.Value, "appears twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

func (p *parser) int(n *yaml.Node, rule, field string, lo, hi int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, rule, field, "must be a whole number")
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
	if err != nil {
		p.errorf(n, rule, field, "%q is not a whole number", n.Value)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(n, rule, field, "%d is outside %d..%d", v, lo, hi)
		return 0, false
	}
	return v, true
}

func (p *parser) duration(n *yaml.Node, rule, field string) (time.Duration, bool) {
	d, err := ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.errorf(n, rule, field, "%q is not a duration such as 30s, 5m, 1h or 7d", n.Value)
		return 0, false
	}
	if d <= 0 || d > MaxRetention {
		p.errorf(n, rule, field, "%s is outside 1ns..%s", n.Value, FormatDuration(MaxRetention))
		return 0, false
	}
	return d, true
}

func (p *parser) currency(n *yaml.Node, rule, field string) (string, bool) {
	if err := validCurrency(n.Value); n.Kind != yaml.ScalarNode || err != nil {
		p.errorf(n, rule, field, "%q is not an ISO 4217 currency code such as EUR", n.Value)
		return "", false
	}
	return n.Value, true
}

func (p *parser) parse(data []byte) *Ruleset {
	rs := &Ruleset{Rates: map[string]float64{}, MaxEvents: DefaultMaxEvents}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.errs = append(p.errs, &ValidationError{File: p.file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
		return rs
	}
	if len(doc.Content) == 0 {
		p.errorf(nil, "", "", "the file is empty")
		return rs
	}
	top := p.fields(doc.Content[0], "", "the top level", "thresholds", "currencies", "state", "rules")

	if n := top["thresholds"]; n == nil {
		p.errorf(doc.Content[0], "", "thresholds", "required: { review: N, block: N }")
	} else {
		th := p.fields(n, "", "thresholds", "review", "block")
		for _, k := range []string{"review", "block"} {
			if th[k] == nil {
				p.errorf(n, "", "thresholds."+k, "required")
			}
		}
		if th["review"] != nil && th["block"] != nil {
			r, ok1 := p.int(th["review"], "", "thresholds.review", 1, 100)
			b, ok2 := p.int(th["block"], "", "thresholds.block", 1, 100)
			if ok1 && ok2 && b < r {
				p.errorf(th["block"], "", "thresholds.block", "%d is below thresholds.review %d", b, r)
			}
			rs.Thresholds = Thresholds{Review: int(r), Block: int(b)}
		}
	}

	if n := top["currencies"]; n != nil {
		cur := p.fields(n, "", "currencies", "base", "rates")
		if cur["base"] != nil {
			rs.Base, _ = p.currency(cur["base"], "", "currencies.base")
		}
		if r := cur["rates"]; r != nil {
			if rs.Base == "" {
				p.errorf(r, "", "currencies.rates", "rates need currencies.base, the currency they are quoted in")
			}
			if r.Kind != yaml.MappingNode {
				p.errorf(r, "", "currencies.rates", "must map currency codes to rates, e.g. { USD: 0.92 }")
			}
			for i := 0; r.Kind == yaml.MappingNode && i+1 < len(r.Content); i += 2 {
				code, ok := p.currency(r.Content[i], "", "currencies.rates")
				v, err := strconv.ParseFloat(r.Content[i+1].Value, 64)
				if err != nil || v <= 0 || math.IsInf(v, 0) {
					p.errorf(r.Content[i+1], "", "currencies.rates."+r.Content[i].Value, "%q is not a positive number", r.Content[i+1].Value)
					continue
				}
				if ok {
					rs.Rates[code] = v
				}
			}
		}
		if rs.Base != "" {
			rs.Rates[rs.Base] = 1
		}
	}

	var retention time.Duration
	if n := top["state"]; n != nil {
		st := p.fields(n, "", "state", "retention", "max_events")
		if st["retention"] != nil {
			retention, _ = p.duration(st["retention"], "", "state.retention")
		}
		if st["max_events"] != nil {
			v, _ := p.int(st["max_events"], "", "state.max_events", MinMaxEvents, MaxMaxEvents)
			rs.MaxEvents = int(v)
		}
	}

	rn := top["rules"]
	switch {
	case rn == nil:
		p.errorf(doc.Content[0], "", "rules", "required: a list of rules")
	case rn.Kind != yaml.SequenceNode:
		p.errorf(rn, "", "rules", "must be a list")
	default:
		seen := map[string]int{}
		for i, n := range rn.Content {
			r, ok := p.rule(n, i, rs.Base)
			if !ok {
				continue
			}
			if prev, dup := seen[r.Name]; dup {
				p.errorf(n, r.Name, "name", "duplicate rule name (first defined on line %d)", prev)
				continue
			}
			seen[r.Name] = r.Line
			rs.Rules = append(rs.Rules, r)
		}
	}

	rs.distinctCap = 1
	longest := time.Duration(0)
	for _, r := range rs.Rules {
		longest = max(longest, r.Window)
		if r.Type == TypeDistinct {
			rs.distinctCap = max(rs.distinctCap, int(r.Limit)+1)
		}
	}
	if retention != 0 && retention < longest {
		p.errorf(top["state"], "", "state.retention", "%s is shorter than the longest window %s", FormatDuration(retention), FormatDuration(longest))
	}
	rs.Retention = max(retention, longest, time.Minute)
	return rs
}

func (p *parser) rule(n *yaml.Node, index int, base string) (Rule, bool) {
	before := len(p.errs)
	// The name labels every other error of the rule, so find it before checking the fields.
	label := fmt.Sprintf("#%d", index+1)
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Value != "" {
			label = n.Content[i+1].Value
		}
	}
	f := p.fields(n, label, "a rule", "name", "type", "limit", "score", "window", "field", "currency")
	r := Rule{Line: n.Line}
	if f["name"] == nil || f["name"].Value == "" {
		p.errorf(n, label, "name", "required")
	} else {
		r.Name = f["name"].Value
	}
	need := func(key string) *yaml.Node {
		if f[key] == nil {
			p.errorf(n, label, key, "required for type %s", r.Type)
		}
		return f[key]
	}
	forbid := func(keys ...string) {
		for _, k := range keys {
			if f[k] != nil {
				p.errorf(f[k], label, k, "does not apply to type %s", r.Type)
			}
		}
	}
	if f["type"] == nil {
		p.errorf(n, label, "type", "required: amount, count, sum or distinct")
		return r, false
	}
	r.Type = RuleType(f["type"].Value)
	if s := need("score"); s != nil {
		v, _ := p.int(s, label, "score", 0, 100)
		r.Score = int(v)
	}
	switch r.Type {
	case TypeAmount, TypeSum:
		if l := need("limit"); l != nil {
			r.Limit, _ = p.int(l, label, "limit", 0, MaxAmount)
		}
		switch {
		case f["currency"] != nil:
			r.Currency, _ = p.currency(f["currency"], label, "currency")
		case base != "":
			r.Currency = base
		default:
			p.errorf(n, label, "currency", "required: the currency of limit (or set currencies.base); amounts in different currencies are never added up unconverted")
		}
		if r.Type == TypeSum {
			if w := need("window"); w != nil {
				r.Window, _ = p.duration(w, label, "window")
			}
		} else {
			forbid("window")
		}
		forbid("field")
	case TypeCount:
		if l := need("limit"); l != nil {
			r.Limit, _ = p.int(l, label, "limit", 0, math.MaxInt32)
		}
		if w := need("window"); w != nil {
			r.Window, _ = p.duration(w, label, "window")
		}
		forbid("field", "currency")
	case TypeDistinct:
		if l := need("limit"); l != nil {
			r.Limit, _ = p.int(l, label, "limit", 0, MaxDistinctLimit)
		}
		if w := need("window"); w != nil {
			r.Window, _ = p.duration(w, label, "window")
		}
		if fn := need("field"); fn != nil {
			found := false
			for i, name := range fieldNames {
				if name == fn.Value {
					r.Field, found = Field(i), true
				}
			}
			if !found {
				p.errorf(fn, label, "field", "%q is not one of %s", fn.Value, strings.Join(fieldNames[:], ", "))
			}
		}
		forbid("currency")
	default:
		p.errorf(f["type"], label, "type", "%q is not one of amount, count, sum, distinct", f["type"].Value)
	}
	return r, len(p.errs) == before
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
