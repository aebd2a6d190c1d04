package rules

import (
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/fraudpipe/fraudpipe/topics"
)

// Late arrivals. Payments of one account reach the detector in an order Kafka does not fix (different keys,
// different partitions, offline terminals, retries), yet a payment's outcome must depend only on the payments
// stamped in its windows. A payment that arrives after payments stamped at or after its own time is therefore
// added where its timestamp puts it, and every exact event whose windows it enters is scored again. What
// re-scoring needs of such an event beyond its amount, time and field hashes is its record: the payment's
// fields (for the alert), its last outcome (to tell whether the new one is stronger), and the outcomes of the
// rules that cannot be computed again after the fact (stickyRule).

// stickyRule reports whether a rule's outcome for a payment is kept as first decided rather than computed again
// when a late arrival re-scores the payment: grouped rules live in another key's state (their re-scores arrive
// through RescoreGrouped). Every other rule is computed again over the state as it now is, by event time:
// amount and list rules from the record, window rules over the now complete windows, deviation, travel and
// profile expressions against the profile of the payments stamped before the payment.
func stickyRule(r *Rule) bool { return r.Grouped }

// record is an exact event's record, decoded.
type record struct {
	score  int
	action Action
	p      Payment // without account, amount, currency and timestamp, which the event and the state hold
	fired  []uint32
	sticky []Fired
	// ruleset identifies the ruleset version that decided the payment (a hash of its digest): only that one
	// re-scores it, so a later version or a changed list never raises a late alert for a payment scored before.
	ruleset uint32
}

var actions = [...]Action{ActionNone, ActionReview, ActionBlock}

func rank(a Action) int { return slices.Index(actions[:], a) }

func (s *State) record(e event) []byte {
	return s.snaps[e.recOff : e.recOff+e.recLen]
}

// holds reports whether an exact event of the state is payment id's. Records start with the payment id.
func (s *State) holds(id string) bool {
	for i := len(s.events) - 1; i >= 0; i-- {
		if e := s.events[i]; e.recLen > 0 {
			rec := s.record(e)
			n, k := binary.Uvarint(rec)
			if k > 0 && n == uint64(len(id)) && uint64(len(rec)-k) >= n && string(rec[k:k+int(n)]) == id {
				return true
			}
		}
	}
	return false
}

// Outcome returns the score and action of a payment still held exactly: its decision, or the stronger one a late
// arrival re-scored it to. The detector sends it again when the payment is delivered again.
func (s *State) Outcome(id string) (score int, action Action, ok bool) {
	for i := len(s.events) - 1; i >= 0; i-- {
		if e := s.events[i]; e.recLen > 0 {
			rec := s.record(e)
			n, k := binary.Uvarint(rec)
			if k > 0 && n == uint64(len(id)) && uint64(len(rec)-k) >= n+2 && string(rec[k:k+int(n)]) == id {
				r := int(rec[k+int(n)+1])
				if r >= len(actions) {
					return 0, ActionNone, false
				}
				return int(rec[k+int(n)]), actions[r], true
			}
		}
	}
	return 0, ActionNone, false
}

// Recent returns up to n of the account's payments that the state holds exactly, newest first by event time,
// leaving out the payment except: what an alert shows of the account's history. Payments already aggregated
// into buckets are not among them.
func (s *State) Recent(account, except string, n int) []topics.RecentPayment {
	var out []topics.RecentPayment
	for i := len(s.events) - 1; i >= 0 && len(out) < n; i-- {
		e := s.events[i]
		if e.recLen == 0 {
			continue
		}
		rec, ok := parseRecord(s.record(e))
		if !ok || rec.p.ID == except {
			continue
		}
		p := rec.p
		p.AccountID, p.Amount, p.Currency, p.Timestamp = account, e.amount, unpackCurrency(e.cur), time.UnixMilli(e.ts).UTC()
		out = append(out, topics.RecentPayment{Payment: p, Score: rec.score, Action: rec.action})
	}
	return out
}

// setRecord writes the record of exact event i: the payment's fields, its decision and the sticky outcomes.
func (s *State) setRecord(i int, p *Payment, d *Decision, sticky []Fired, ruleset uint32) {
	var buf [8]uint32
	fired := buf[:0]
	for _, f := range d.Fired {
		fired = append(fired, hash32(f.Name))
	}
	s.writeRecord(i, d.Score, d.Action, p, fired, sticky, ruleset)
}

func (s *State) writeRecord(i int, score int, action Action, p *Payment, fired []uint32, sticky []Fired, ruleset uint32) {
	if len(s.snaps) > max(s.compactAt, 8<<10) {
		s.compactSnaps()
	}
	off := len(s.snaps)
	b := appendString(s.snaps, p.ID) // first, as in a grouping value's record: see holds
	b = append(b, byte(score), byte(rank(action)))
	for _, f := range recordFields {
		b = appendString(b, f.of(p))
	}
	if p.Lat != nil && p.Lon != nil {
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*p.Lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*p.Lon))
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(fired)))
	for _, h := range fired {
		b = binary.LittleEndian.AppendUint32(b, h)
	}
	b = binary.AppendUvarint(b, uint64(len(sticky)))
	for _, f := range sticky {
		b = appendString(b, f.Name)
		b = binary.AppendUvarint(b, uint64(f.Score))
		b = appendString(b, f.Reason)
	}
	b = binary.LittleEndian.AppendUint32(b, ruleset)
	s.snaps = b
	e := &s.events[i]
	e.recOff, e.recLen, e.derived = uint32(off), uint32(len(b)-off), true
}

// recordFields are the fields a record holds, in its order, by the attribute they hash into.
var recordFields = [...]Field{FieldMerchantID, FieldMerchantCategory, FieldCountry, FieldCardID, FieldDeviceID, FieldIP}

// deriveAttrs sets the hashes of the fields a record holds, as add computed them from the payment.
func deriveAttrs(attrs *[numFields]uint32, rec []byte) bool {
	d := decoder{b: rec}
	d.bytes(d.count(1)) // the payment id
	d.bytes(2)          // score, action
	for _, f := range recordFields {
		v := d.bytes(d.count(1))
		attrs[f] = 0
		if len(v) > 0 {
			attrs[f] = hash32Bytes(v)
		}
	}
	return d.err == nil
}

// compactSnaps drops the records no event points to any more (replaced, aggregated or pruned). A state that is
// encoded after every payment never needs it; one that lives long in memory (backtests) does.
func (s *State) compactSnaps() {
	var live []byte
	for i := range s.events {
		e := &s.events[i]
		if e.recLen == 0 {
			continue
		}
		off := len(live)
		live = append(live, s.record(*e)...)
		e.recOff = uint32(off)
	}
	s.snaps = append(s.snaps[:0], live...)
	s.compactAt = 2 * len(s.snaps)
}

func parseRecord(b []byte) (record, bool) {
	d := decoder{b: b}
	var r record
	r.p.ID = d.string()
	if sa := d.bytes(2); sa != nil {
		r.score = int(sa[0])
		if int(sa[1]) < len(actions) {
			r.action = actions[sa[1]]
		}
	}
	for _, v := range [...]*string{&r.p.MerchantID, &r.p.MerchantCategory, &r.p.Country, &r.p.CardID, &r.p.DeviceID, &r.p.IP} {
		*v = d.string()
	}
	if loc := d.bytes(1); loc != nil && loc[0] == 1 {
		lat, lon := math.Float64frombits(d.u64()), math.Float64frombits(d.u64())
		r.p.Lat, r.p.Lon = &lat, &lon
	}
	r.fired = make([]uint32, d.count(4))
	for i := range r.fired {
		r.fired[i] = d.u32()
	}
	r.sticky = make([]Fired, d.count(3))
	for i := range r.sticky {
		r.sticky[i] = Fired{Name: d.string(), Score: int(d.uvarint()), Reason: d.string()}
	}
	r.ruleset = d.u32()
	return r, d.err == nil && len(d.b) == 0
}

// rescoreAround scores again the exact events that the payment at index i (of account) enters the windows of:
// those stamped at its time that arrived before it, and those stamped after it within the longest window of
// a rule a re-score computes again. It returns those whose outcome grew.
func (rs *Ruleset) rescoreAround(st *State, i int, account string, env Env) []LateDecision {
	span := rs.rescoreSpan.Milliseconds()
	if span == 0 {
		return nil
	}
	t := st.events[i].ts
	var out []LateDecision
	for j := i - 1; j >= 0 && st.events[j].ts == t; j-- {
		if ld, ok := rs.rescore(st, j, account, env); ok {
			out = append(out, ld)
		}
	}
	for j := i + 1; j < len(st.events) && st.events[j].ts < t+span; j++ {
		if ld, ok := rs.rescore(st, j, account, env); ok {
			out = append(out, ld)
		}
	}
	// Oldest first, as the payments happened.
	slices.SortStableFunc(out, func(a, b LateDecision) int { return a.Payment.Timestamp.Compare(b.Payment.Timestamp) })
	return out
}

// rescore scores exact event j again over the state as it is now. It reports the new decision when it alerts
// where the last one did not, blocks where the last one reviewed, or fires more rules; the record then keeps the
// new decision, so a later re-score compares with it. Alerts are never taken back: an outcome that shrank (a
// cooldown that now covers the payment) is ignored.
func (rs *Ruleset) rescore(st *State, j int, account string, env Env) (LateDecision, bool) {
	e := st.events[j]
	if e.recLen == 0 {
		return LateDecision{}, false
	}
	rec, ok := parseRecord(st.record(e))
	if !ok || rec.ruleset != rs.digestHash {
		return LateDecision{}, false
	}
	p := rec.p
	p.AccountID, p.Amount, p.Currency = account, e.amount, unpackCurrency(e.cur)
	p.Timestamp = time.UnixMilli(e.ts).UTC()
	var d Decision
	rs.decide(st, &p, e.ts, env, nil, true, rec.sticky, &d)
	if d.Action == ActionNone || rank(d.Action) < rank(rec.action) {
		return LateDecision{}, false
	}
	var changed []string
	for _, f := range d.Fired {
		if !slices.Contains(rec.fired, hash32(f.Name)) {
			changed = append(changed, f.Name)
		}
	}
	if rank(d.Action) == rank(rec.action) && len(changed) == 0 {
		return LateDecision{}, false
	}
	rs.startCooldowns(st, &d, e.ts)
	st.setRecord(j, &p, &d, rec.sticky, rec.ruleset)
	return LateDecision{Payment: p, Decision: d, Changed: changed}, true
}

// previousLocation is where the account's payment stamped last before t was made, by event time: the profile's
// last location when that is older than t (payments in order), else the newest exact event before t that has a
// place. ok is false when none is known.
func (s *State) previousLocation(t int64) (location, bool) {
	l := s.previous(t, true)
	return l, l.ok
}

// previousPlace is like previousLocation, but a payment that named only a country without a known centre counts
// too (account.last_country).
func (s *State) previousPlace(t int64) (location, bool) {
	l := s.previous(t, false)
	return l, l.ok || l.country != ""
}

func (s *State) previous(t int64, located bool) location {
	found := func(l location) bool { return l.ok || (!located && l.country != "") }
	if s.last.ts < t && (found(s.last) || len(s.events) == 0) {
		return s.last
	}
	for j := len(s.events) - 1; j >= 0; j-- {
		e := s.events[j]
		if e.ts >= t || e.recLen == 0 {
			continue
		}
		rec, ok := parseRecord(s.record(e))
		if !ok {
			continue
		}
		lat, lon, ok, exact := locateExact(&rec.p)
		if l := (location{ts: e.ts, lat: lat, lon: lon, country: rec.p.Country, ok: ok, exact: exact}); found(l) {
			return l
		}
	}
	if s.last.ts < t && found(s.last) {
		return s.last
	}
	return location{}
}
