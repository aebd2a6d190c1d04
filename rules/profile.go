package rules

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The account profile: what deviation, travel, cooldown and expression rules need beyond the windows.

// The profile by event time. The baseline (a running mean and variance of the amounts) and the home country of
// a payment stamped t are those of the account's payments stamped before t, whichever arrived first: State.base
// and State.home hold the payments no longer held exactly, folded in the order they were stamped as they leave,
// and the exact ones stamped before t are folded on top when a rule asks. A late payment therefore changes the
// profile its successors see, and re-scoring them (late.go) reads the changed one.

// foldAmount adds an amount to a baseline, in the ruleset's base currency (else the first folded payment's).
func (rs *Ruleset) foldAmount(b *baseline, amount int64, cur uint16) {
	if b.n == 0 && b.cur == 0 {
		b.cur = cur
		if rs.Base != "" {
			b.cur = packCurrency(rs.Base)
		}
	}
	if v, ok := rs.convert(amount, cur, unpackCurrency(b.cur)); ok {
		b.add(float64(v))
	}
}

// leave folds an exact event that is being aggregated or dropped into the profile of such payments.
func (s *State) leave(rs *Ruleset, e event) {
	s.prefix.valid = false
	if e.inBase {
		return
	}
	rs.foldAmount(&s.base, e.amount, e.cur)
	if s.home == "" && e.recLen > 0 {
		if rec, ok := parseRecord(s.record(e)); ok && rec.p.Country != "" {
			s.home = rec.p.Country
		}
	}
}

// baselineBefore is the baseline of the account's payments stamped before t. Re-scoring asks for it at
// increasing t over the same events, so the last prefix folded is kept and continued (State.prefix): a late
// payment's re-scores cost one pass over the events, not one each.
func (rs *Ruleset) baselineBefore(s *State, t int64) baseline {
	k := 0
	for k < len(s.events) && s.events[k].ts < t {
		k++
	}
	from, b := 0, s.base
	if p := &s.prefix; p.valid && p.n <= k {
		from, b = p.n, p.base
	}
	for _, e := range s.events[from:k] {
		if !e.inBase {
			rs.foldAmount(&b, e.amount, e.cur)
		}
	}
	s.prefix = prefixBase{valid: true, n: k, base: b}
	return b
}

// homeBefore is the country of the account's earliest payment stamped before t that named one ("" if none).
func (s *State) homeBefore(t int64) string {
	if s.home != "" {
		return s.home
	}
	for _, e := range s.events {
		if e.ts >= t {
			break
		}
		if e.recLen > 0 && e.attrs[FieldCountry] != 0 {
			if rec, ok := parseRecord(s.record(e)); ok && rec.p.Country != "" {
				return rec.p.Country
			}
		}
	}
	return ""
}

// updateProfile records where the newest payment by timestamp was made; the rest of the profile follows the
// exact events (see above).
func (rs *Ruleset) updateProfile(st *State, p *Payment) {
	t := p.Timestamp.UnixMilli()
	if lat, lon, ok, exact := locateExact(p); ok && (!st.last.ok || t >= st.last.ts) {
		st.last = location{ts: t, lat: lat, lon: lon, country: p.Country, ok: true, exact: exact}
	} else if !ok && (!st.last.ok || t >= st.last.ts) && p.Country != "" {
		// Unknown place: remember the country for expressions, but forget the coordinates rather than compare a
		// later payment with a stale position.
		st.last = location{ts: t, country: p.Country}
	}
	// A cooldown matters while a payment stamped before its end can still arrive.
	horizon := st.newest - rs.Lateness.Milliseconds()
	st.cooldowns = slices.DeleteFunc(st.cooldowns, func(c cooldown) bool { return c.until <= horizon })
}

// minRelStddev keeps an account that always pays the same amount from alerting on one cent more: its standard
// deviation counts as at least this share of its mean.
const minRelStddev = 0.1

// deviation checks the amount against the account's baseline as it was before this payment.
func (rs *Ruleset) deviation(st *State, p *Payment, r *Rule, d *Decision) string {
	base := rs.baselineBefore(st, p.Timestamp.UnixMilli())
	b := &base
	if b.n < r.MinPayments {
		return ""
	}
	cur := unpackCurrency(b.cur)
	v, ok := rs.convert(p.Amount, packCurrency(p.Currency), cur)
	if !ok {
		d.Unconverted = append(d.Unconverted, r.Name)
		return ""
	}
	sd := math.Max(b.stddev(), minRelStddev*b.mean)
	if sd <= 0 || float64(v) <= b.mean+r.Factor*sd {
		return ""
	}
	return fmt.Sprintf("amount %s is %.1fσ above the account's mean %s (σ %s over %d payments) > %gσ",
		FormatAmount(v, cur), (float64(v)-b.mean)/sd, FormatAmount(int64(math.Round(b.mean)), cur),
		FormatAmount(int64(math.Round(sd)), cur), b.n, r.Factor)
}

// travel checks whether the account could have got from its previous payment's place to this one's in time.
func travel(st *State, p *Payment, r *Rule) string {
	lat, lon, ok, exact := locateExact(p)
	if !ok {
		return ""
	}
	t := p.Timestamp.UnixMilli()
	last, known := st.previousLocation(t)
	if !known {
		return ""
	}
	km := distanceKm(last.lat, last.lon, lat, lon)
	minKm := r.MinDistance
	if !exact || !last.exact {
		minKm = max(minKm, centroidSlack)
	}
	if km <= minKm {
		return ""
	}
	dt := time.Duration(t-last.ts) * time.Millisecond
	dt = max(dt, -dt)
	speed := math.Inf(1)
	if dt > 0 {
		speed = km / dt.Hours()
	}
	if speed <= r.MaxSpeed {
		return ""
	}
	from, to := last.country, p.Country
	return fmt.Sprintf("%s → %s: %.0f km in %s (%.0f km/h > %g km/h)", orUnknown(from), orUnknown(to), km, dt.Round(time.Second), math.Min(speed, 1e9), r.MaxSpeed)
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// cooling reports whether a rule stays quiet for a payment stamped t: the rule alerted the account for a payment
// stamped in [t − cooldown, t). By event time, so a late payment is cooled by the alerts stamped before it, not by
// those that merely arrived before it.
func (s *State) cooling(rule string, t int64) bool {
	h := hash32(rule)
	for _, c := range s.cooldowns {
		if c.rule == h && c.from < t && t < c.until {
			return true
		}
	}
	return false
}

// maxCooldowns bounds the cooldowns an account keeps; the oldest go first.
const maxCooldowns = 32

func (s *State) startCooldown(rule string, from, until int64) {
	h := hash32(rule)
	for _, c := range s.cooldowns {
		if c.rule == h && c.from == from {
			return
		}
	}
	if len(s.cooldowns) >= maxCooldowns {
		s.cooldowns = slices.Delete(s.cooldowns, 0, 1)
	}
	s.cooldowns = append(s.cooldowns, cooldown{rule: h, from: from, until: until})
}
