package rules

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The rules file's parser: YAML to a validated Ruleset, every problem reported with file, line, rule and field.

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
