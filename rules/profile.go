package rules

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The account profile: what deviation, travel, cooldown and expression rules need beyond the windows.

// updateProfile folds a scored payment into the account's baseline, home country and last location.
func (rs *Ruleset) updateProfile(st *State, p *Payment) {
	if st.base.n == 0 {
		st.base.cur = packCurrency(p.Currency)
		if rs.Base != "" {
			st.base.cur = packCurrency(rs.Base)
		}
	}
	if v, ok := rs.convert(p.Amount, packCurrency(p.Currency), unpackCurrency(st.base.cur)); ok {
		st.base.add(float64(v))
	}
	if st.home == "" {
		st.home = p.Country
	}
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
	b := &st.base
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
