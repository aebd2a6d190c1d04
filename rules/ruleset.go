package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// LoadFile reads and validates a rules file and the list files it names (relative to its directory).
func LoadFile(path string) (*Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	dir := filepath.Dir(path)
	b := Bundle{Name: path, Data: data, Files: map[string][]byte{}}
	return parseBundle(b, func(rel string) ([]byte, error) {
		if filepath.IsAbs(rel) {
			return nil, errors.New("must be relative to the rules file, so that a push carries it")
		}
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err == nil {
			b.Files[rel] = data
		}
		return data, err
	})
}

// Parse validates a rules file's bytes; name is used in error messages. All problems are reported at once,
// joined, each a *ValidationError. A file that names list files needs LoadFile or ParseBundle.
func Parse(name string, data []byte) (*Ruleset, error) {
	return ParseBundle(Bundle{Name: name, Data: data})
}

// ParseBundle validates a bundle, reading list files from it alone.
func ParseBundle(b Bundle) (*Ruleset, error) {
	return parseBundle(b, func(rel string) ([]byte, error) {
		if data, ok := b.Files[rel]; ok {
			return data, nil
		}
		return nil, errors.New("not in the ruleset")
	})
}

func parseBundle(b Bundle, read func(rel string) ([]byte, error)) (*Ruleset, error) {
	p := parser{file: b.Name, read: read}
	rs := p.parse(b.Data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	rs.Source = b.Name
	rs.Bundle = b
	rs.Digest = b.Digest()
	rs.digestHash = hash32(rs.Digest)
	return rs, nil
}

type parser struct {
	file string
	read func(rel string) ([]byte, error)
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
		p.errs = append(p.errs, syntaxError(p.file, data, err))
		return rs
	}
	if len(doc.Content) == 0 {
		p.errorf(nil, "", "", "the file is empty")
		return rs
	}
	top := p.fields(doc.Content[0], "", "the top level", "thresholds", "currencies", "state", "lists", "allow", "rules")

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
	rs.Lateness = DefaultLateness
	if n := top["state"]; n != nil {
		st := p.fields(n, "", "state", "retention", "max_events", "lateness")
		if st["retention"] != nil {
			retention, _ = p.duration(st["retention"], "", "state.retention")
		}
		if st["lateness"] != nil {
			if st["lateness"].Value == "0" || st["lateness"].Value == "0s" {
				rs.Lateness = 0
			} else {
				rs.Lateness, _ = p.duration(st["lateness"], "", "state.lateness")
			}
		}
		if st["max_events"] != nil {
			v, _ := p.int(st["max_events"], "", "state.max_events", MinMaxEvents, MaxMaxEvents)
			rs.MaxEvents = int(v)
		}
	}

	rs.Lists = p.lists(top["lists"])
	if n := top["allow"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.errorf(n, "", "allow", "must be a list of { list: NAME, field: FIELD }")
		}
		for i := 0; n.Kind == yaml.SequenceNode && i < len(n.Content); i++ {
			f := p.fields(n.Content[i], "", "an allow entry", "list", "field")
			a := AllowEntry{}
			if f["list"] == nil || f["field"] == nil {
				p.errorf(n.Content[i], "", "allow", "an entry needs list and field")
				continue
			}
			a.List = p.listRef(rs.Lists, f["list"], "", "allow.list")
			a.Field, _ = p.field(f["field"], "", "allow.field")
			rs.Allow = append(rs.Allow, a)
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
			r, ok := p.rule(n, i, rs)
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
		longest = max(longest, r.Window, r.prog.window())
		rs.hasExpr = rs.hasExpr || r.Type == TypeExpression
		if r.Type == TypeDistinct {
			rs.distinctCap = max(rs.distinctCap, int(r.Limit)+1)
		}
	}
	if retention != 0 && retention < longest {
		p.errorf(top["state"], "", "state.retention", "%s is shorter than the longest window %s", FormatDuration(retention), FormatDuration(longest))
	}
	// A late payment must find every payment of the windows it affects: those reach back one window from the
	// oldest payment it can affect, which is at most Lateness behind the newest.
	rs.Retention = max(retention, longest+rs.Lateness, time.Minute)
	if rs.Retention > MaxRetention {
		p.errorf(top["state"], "", "state.lateness", "the longest window %s plus lateness %s exceeds %s", FormatDuration(longest), FormatDuration(rs.Lateness), FormatDuration(MaxRetention))
	}
	for _, r := range rs.Rules {
		if !r.Grouped && (r.Type == TypeCount || r.Type == TypeSum || r.Type == TypeDistinct) {
			rs.rescoreSpan = max(rs.rescoreSpan, r.Window)
		}
		if r.Type == TypeExpression && r.prog.windowed {
			rs.rescoreSpan = max(rs.rescoreSpan, r.prog.span)
		}
		// The profile (baseline, home, previous payment) of every later payment includes a late one.
		if r.Mode != ModeShadow && (r.Type == TypeDeviation || r.Type == TypeTravel || (r.Type == TypeExpression && !r.prog.windowed)) {
			rs.rescoreSpan = MaxRetention
		}
	}
	rs.groupFields = groupFields(rs.Rules)
	return rs
}

func (p *parser) rule(n *yaml.Node, index int, rs *Ruleset) (Rule, bool) {
	base := rs.Base
	before := len(p.errs)
	// The name labels every other error of the rule, so find it before checking the fields.
	label := fmt.Sprintf("#%d", index+1)
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Value != "" {
			label = n.Content[i+1].Value
		}
	}
	f := p.fields(n, label, "a rule", "name", "type", "limit", "score", "window", "field", "currency", "mode", "cooldown",
		"list", "factor", "min_payments", "max_speed_kmh", "min_distance_km", "expr", "by")
	r := Rule{Line: n.Line, Mode: ModeLive}
	if m := f["mode"]; m != nil {
		r.Mode = Mode(m.Value)
		if r.Mode != ModeLive && r.Mode != ModeShadow {
			p.errorf(m, label, "mode", "%q is not live or shadow", m.Value)
		}
	}
	if c := f["cooldown"]; c != nil {
		r.Cooldown, _ = p.duration(c, label, "cooldown")
	}
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
		p.errorf(n, label, "type", "required: one of %s", ruleTypes)
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
			r.Field, _ = p.field(fn, label, "field")
		}
		forbid("currency")
	case TypeList:
		if fn := need("field"); fn != nil {
			r.Field, _ = p.field(fn, label, "field")
		}
		if l := need("list"); l != nil {
			r.List = p.listRef(rs.Lists, l, label, "list")
		}
		forbid("limit", "window", "currency")
	case TypeDeviation:
		r.Factor, r.MinPayments = 3, 10
		if v := f["factor"]; v != nil {
			r.Factor, _ = p.float(v, label, "factor", 0.5, 100)
		}
		if v := f["min_payments"]; v != nil {
			r.MinPayments, _ = p.int(v, label, "min_payments", 2, 1_000_000)
		}
		forbid("limit", "window", "field", "currency")
	case TypeTravel:
		r.MaxSpeed, r.MinDistance = 900, 300
		if v := f["max_speed_kmh"]; v != nil {
			r.MaxSpeed, _ = p.float(v, label, "max_speed_kmh", 1, 1e6)
		}
		if v := f["min_distance_km"]; v != nil {
			r.MinDistance, _ = p.float(v, label, "min_distance_km", 0, 20_100)
		}
		forbid("limit", "window", "field", "currency")
	case TypeExpression:
		if e := need("expr"); e != nil {
			r.Expr = e.Value
			prog, err := compileExpression(e.Value)
			if err != nil {
				p.errorf(e, label, "expr", "%v", err)
			}
			r.prog = prog
		}
		forbid("limit", "window", "field", "currency")
	default:
		p.errorf(f["type"], label, "type", "%q is not one of %s", f["type"].Value, ruleTypes)
	}
	if b := f["by"]; b != nil {
		switch r.Type {
		case TypeCount, TypeSum, TypeDistinct:
			if fld, ok := p.field(b, label, "by"); ok {
				if !slices.Contains(groupable, fld) {
					p.errorf(b, label, "by", "%q cannot group; use card_id, device_id, ip or merchant_id", b.Value)
				}
				r.By, r.Grouped = fld, true
			}
		default:
			p.errorf(b, label, "by", "does not apply to type %s (only count, sum and distinct group)", r.Type)
		}
	}
	for key, applies := range map[string]bool{
		"list": r.Type == TypeList, "factor": r.Type == TypeDeviation, "min_payments": r.Type == TypeDeviation,
		"max_speed_kmh": r.Type == TypeTravel, "min_distance_km": r.Type == TypeTravel, "expr": r.Type == TypeExpression,
	} {
		if !applies && f[key] != nil && slices.Contains(strings.Split(ruleTypes, ", "), string(r.Type)) {
			p.errorf(f[key], label, key, "does not apply to type %s", r.Type)
		}
	}
	return r, len(p.errs) == before
}

func (p *parser) float(n *yaml.Node, rule, field string, lo, hi float64) (float64, bool) {
	v, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.errorf(n, rule, field, "%q is not a number", n.Value)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(n, rule, field, "%g is outside %g..%g", v, lo, hi)
		return 0, false
	}
	return v, true
}

func (p *parser) field(n *yaml.Node, rule, field string) (Field, bool) {
	for i, name := range fieldNames {
		if name == n.Value {
			return Field(i), true
		}
	}
	p.errorf(n, rule, field, "%q is not one of %s", n.Value, strings.Join(fieldNames[:], ", "))
	return 0, false
}

// lists reads the lists section: name → { file: PATH } (file optional: a list may live only on the lists topic).
func (p *parser) lists(n *yaml.Node) map[string]map[string]struct{} {
	out := map[string]map[string]struct{}{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "lists", "must map list names to { file: PATH }")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, v := n.Content[i].Value, n.Content[i+1]
		if !validListName(name) {
			p.errorf(n.Content[i], "", "lists."+name, "a list name is letters, digits, '-' and '_'")
			continue
		}
		set := map[string]struct{}{}
		out[name] = set
		f := p.fields(v, "", "lists."+name, "file")
		if f["file"] == nil {
			continue
		}
		data, err := p.read(f["file"].Value)
		if err != nil {
			p.errorf(f["file"], "", "lists."+name+".file", "%s: %v", f["file"].Value, err)
			continue
		}
		for line := range strings.Lines(string(data)) {
			if v, _, _ := strings.Cut(line, "#"); strings.TrimSpace(v) != "" {
				set[strings.TrimSpace(v)] = struct{}{}
			}
		}
	}
	return out
}

func validListName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (p *parser) listRef(lists map[string]map[string]struct{}, n *yaml.Node, rule, field string) string {
	if _, ok := lists[n.Value]; !ok {
		p.errorf(n, rule, field, "no list %q in the lists section", n.Value)
	}
	return n.Value
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
