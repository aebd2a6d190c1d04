package rules

import (
	"math"
	"slices"
	"time"
)

// State is one account's window state: what the rules need to know about its recent payments.
//
// Precision: the newest MaxEvents payments are kept exactly (timestamp to the millisecond, amount, currency, a
// 32-bit hash of each countable field), so windows over them are exact, edges included. Older payments, which
// only an account that pays more than MaxEvents times within the retention has, are folded into at most 64
// buckets spanning the retention; a bucket that straddles a window's start counts as inside it, so aggregated
// payments can only make a rule fire earlier, never later. Per-account state is therefore bounded by
// MaxEvents events plus 64 buckets, whatever the account does.
type State struct {
	// Touched is the processing time (unix ms) of the last update, for expiring idle accounts. It is set by the
	// caller, since this package reads no clock.
	Touched int64

	events  []event  // sorted by ts
	buckets []bucket // sorted by first
	seen    []seen   // recent payment ids, oldest first
	newest  int64    // the largest event timestamp seen, which drives pruning
	// snaps holds the exact events' records (see record): their events point into it. Replaced records stay
	// until the state is encoded, which writes only the live ones.
	snaps     []byte
	compactAt int // the size of snaps at which setRecord drops dead records
	prefix    prefixBase

	// The account's profile, which outlives the windows: deviation, travel and expression rules read it. base
	// and home cover the payments no longer held exactly (aggregated or dropped), which leave oldest first; the
	// exact ones are added on top for a payment stamped t, those stamped before t only (profile.go).
	base      baseline
	home      string     // country of the earliest such payment that named one
	last      location   // where the newest payment (by timestamp) was made
	cooldowns []cooldown // rules that alerted recently, with when they may alert again
}

// baseline is a running mean and variance of the account's amounts in one currency (Welford's algorithm, turning
// into an exponentially weighted one after baselineSpan payments so it follows a customer whose spending changes).
type baseline struct {
	cur      uint16
	n        int64
	mean, m2 float64
}

const baselineSpan = 100

func (b *baseline) add(amount float64) {
	b.n++
	w := 1 / float64(min(b.n, baselineSpan))
	d := amount - b.mean
	b.mean += w * d
	b.m2 = (1 - w) * (b.m2 + w*d*d)
}

// stddev is the population standard deviation of the amounts seen.
func (b *baseline) stddev() float64 {
	if b.n < 2 {
		return 0
	}
	return math.Sqrt(b.m2)
}

type location struct {
	ts       int64
	lat, lon float64
	country  string
	ok       bool // lat and lon are known
	exact    bool // they came with the payment, not from the country's centre
}

// prefixBase is the baseline folded over the first n exact events, kept between calls of baselineBefore until
// the events or the baseline change. Not encoded.
type prefixBase struct {
	valid bool
	n     int
	base  baseline
}

// cooldown is one alert of a rule with a cooldown: the rule stays quiet for payments stamped in (from, until).
type cooldown struct {
	rule        uint32 // hash of the rule's name
	from, until int64  // unix ms of payment time
}

type event struct {
	ts     int64 // unix ms
	amount int64
	cur    uint16
	attrs  [numFields]uint32 // hash of each countable field; 0 = empty
	// rec locates the payment's record in State.snaps: what re-scoring it after a late arrival needs.
	recOff, recLen uint32
	// derived: the record holds the payment's fields, so the encoding leaves out their hashes and the decoder
	// computes them again (all but the account's, which the record does not hold).
	derived bool
	// inBase: the payment is already in State.base (states written before version 4 folded every payment into
	// the baseline as it arrived).
	inBase bool
}

type curSum struct {
	cur uint16
	sum int64
}

type bucket struct {
	first, last int64 // the span of the payments folded in
	count       int64
	sums        []curSum
	attrs       [numFields][]uint32 // distinct hashes, at most distinctCap each
}

type seen struct {
	id    uint64 // hash of the payment id
	src   uint64 // which Kafka record delivered it, so a redelivery can be told from a producer's retry
	alert []byte // the alert it produced, kept for re-emission after a crash
}

const (
	// SeenCap is how many recent payment ids an account remembers: producer retries arrive within seconds, and
	// the payments a crash redelivers are those since the last offset commit (about a second's worth).
	SeenCap = 64
	// seenAlertBytes bounds the alerts kept for re-emission, newest first. They are many because a failed emit
	// is not noticed at once: the partition goes on scoring for the seconds the producer retries, and when it
	// restarts at the failed record everything after it is redelivered, a burst's many alerts included. The
	// detector stores alerts without their payment (the redelivered record has it), about 300 bytes each.
	seenAlertBytes = 16 << 10
	numBuckets     = 64
)

// Lookup reports whether the account has seen this payment id, from which record, and what alert it produced
// (nil if none). The recent ids remember the record and the alert; older payments still held exactly are found
// too (src 0), so that a retry that arrives long after the payment, out of order, is not counted twice.
func (s *State) Lookup(paymentID string) (src uint64, alert []byte, ok bool) {
	id := hash64(paymentID)
	for i := len(s.seen) - 1; i >= 0; i-- {
		if s.seen[i].id == id {
			return s.seen[i].src, s.seen[i].alert, true
		}
	}
	return 0, nil, s.holds(paymentID)
}

// Remember records a processed payment id with the record that delivered it and the alert it produced.
func (s *State) Remember(paymentID string, src uint64, alert []byte) {
	if len(s.seen) >= SeenCap {
		s.seen = slices.Delete(s.seen, 0, len(s.seen)-SeenCap+1)
	}
	s.seen = append(s.seen, seen{id: hash64(paymentID), src: src})
	s.KeepAlerts(alert)
}

// KeepAlerts keeps, with the id remembered last, the alerts a redelivery of its record must send again.
func (s *State) KeepAlerts(alert []byte) {
	if len(s.seen) == 0 {
		return
	}
	s.seen[len(s.seen)-1].alert = alert
	if len(alert) == 0 {
		return // the older entries' alerts already fit; nothing to give way
	}
	// The newest entry keeps its alerts whatever their size (a late payment may raise many): they are what a
	// redelivery of the record just processed must send again. Older ones give way beyond seenAlertBytes.
	kept := len(alert)
	for i := len(s.seen) - 2; i >= 0; i-- {
		if kept += len(s.seen[i].alert); kept > seenAlertBytes {
			s.seen[i].alert = nil
		}
	}
}

// Size reports how many exact events and aggregated buckets the state holds.
func (s *State) Size() (events, buckets int) { return len(s.events), len(s.buckets) }

// Idle reports whether the state was last touched more than ttl before now: such an account's state can be
// deleted, since no window of a future payment reaches back to it.
func (s *State) Idle(now time.Time, ttl time.Duration) bool {
	return now.UnixMilli()-s.Touched > ttl.Milliseconds()
}

// add inserts a payment, aggregates the oldest events beyond maxEvents and drops what is older than retention.
// It returns the payment's index among the exact events, or -1 when it was at once aggregated or dropped.
func (s *State) add(p *Payment, rs *Ruleset) int {
	e := event{ts: p.Timestamp.UnixMilli(), amount: p.Amount, cur: packCurrency(p.Currency)}
	for f := range numFields {
		if v := f.of(p); v != "" {
			e.attrs[f] = hash32(v)
		}
	}
	// Payments mostly arrive in order, so the insert is almost always an append. A payment goes after those
	// stamped with the same time, so that the ones it may affect are found on both sides (rescoreAfter).
	i := len(s.events)
	for i > 0 && s.events[i-1].ts > e.ts {
		i--
	}
	s.events = slices.Insert(s.events, i, e)
	s.newest = max(s.newest, e.ts)
	if i < s.prefix.n {
		s.prefix.valid = false // the payment lies inside the folded prefix
	}

	if over := len(s.events) - rs.MaxEvents; over > 0 {
		width := max(rs.Retention.Milliseconds()/numBuckets, 1)
		for _, old := range s.events[:over] {
			s.fold(old, width, rs.distinctCap)
			s.leave(rs, old)
		}
		s.events = slices.Delete(s.events, 0, over)
		i -= over
	}
	i -= s.prune(rs, rs.Retention)
	return max(i, -1)
}

func (s *State) fold(e event, width int64, distinctCap int) {
	key := e.ts / width
	i, found := slices.BinarySearchFunc(s.buckets, key, func(b bucket, k int64) int { return cmpInt(b.first/width, k) })
	if !found {
		s.buckets = slices.Insert(s.buckets, i, bucket{first: e.ts, last: e.ts})
	}
	b := &s.buckets[i]
	b.first, b.last = min(b.first, e.ts), max(b.last, e.ts)
	b.count++
	j := slices.IndexFunc(b.sums, func(c curSum) bool { return c.cur == e.cur })
	if j < 0 {
		b.sums = append(b.sums, curSum{cur: e.cur})
		j = len(b.sums) - 1
	}
	b.sums[j].sum += e.amount
	for f, h := range e.attrs {
		if h != 0 && len(b.attrs[f]) < distinctCap && !slices.Contains(b.attrs[f], h) {
			b.attrs[f] = append(b.attrs[f], h)
		}
	}
}

// prune drops what is older than retention and returns how many exact events it dropped.
func (s *State) prune(rs *Ruleset, retention time.Duration) int {
	horizon := s.newest - retention.Milliseconds()
	n := 0
	for n < len(s.events) && s.events[n].ts <= horizon {
		s.leave(rs, s.events[n])
		n++
	}
	s.events = slices.Delete(s.events, 0, n)
	s.buckets = slices.DeleteFunc(s.buckets, func(b bucket) bool { return b.last <= horizon })
	return n
}

// span returns the events with timestamps in (from, to].
func (s *State) span(from, to int64) []event {
	lo, _ := slices.BinarySearchFunc(s.events, from, func(e event, t int64) int {
		if e.ts <= t {
			return -1
		}
		return 1
	})
	hi, _ := slices.BinarySearchFunc(s.events, to, func(e event, t int64) int {
		if e.ts <= t {
			return -1
		}
		return 1
	})
	return s.events[lo:hi]
}

// overlaps reports whether a bucket has payments that may fall in (from, to].
func (b *bucket) overlaps(from, to int64) bool { return b.last > from && b.first <= to }

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FNV-1a, written out so hashing a field costs no allocation; the values must be stable across processes and
// releases because they are stored, which rules out hash/maphash.
func hash32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	if h == 0 {
		h = 1 // 0 means "empty"
	}
	return h
}

func hash32Bytes(s []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range s {
		h ^= uint32(c)
		h *= 16777619
	}
	if h == 0 {
		h = 1
	}
	return h
}

func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// SourceID identifies the Kafka record that delivered a payment.
func SourceID(topic string, partition int32, offset int64) uint64 {
	h := hash64(topic)
	h ^= uint64(uint32(partition))
	h *= 1099511628211
	h ^= uint64(offset)
	h *= 1099511628211
	return h
}

func packCurrency(c string) uint16 {
	if len(c) != 3 {
		return 0
	}
	return uint16(c[0]-'A')*676 + uint16(c[1]-'A')*26 + uint16(c[2]-'A')
}

func unpackCurrency(v uint16) string {
	return string([]byte{byte(v/676) + 'A', byte(v/26%26) + 'A', byte(v%26) + 'A'})
}

// Reset empties s for another account's state, keeping the memory of its event and payment id lists: a detector
// recycles states once they are encoded, so that decoding an ordinary account's state allocates nothing.
func (s *State) Reset() {
	events, seen, snaps := s.events[:0], s.seen[:0], s.snaps[:0]
	clear(seen[:cap(seen)]) // let go of the alerts the previous account kept
	*s = State{events: events, seen: seen, snaps: snaps}
}
