package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
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

	// The account's profile, which outlives the windows: deviation, travel and expression rules read it.
	base      baseline
	home      string     // country of the account's first payment that named one
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
	s.seen = append(s.seen, seen{id: hash64(paymentID), src: src, alert: alert})
	kept := 0
	for i := len(s.seen) - 1; i >= 0; i-- {
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
		if v := p.field(f); v != "" {
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

	if over := len(s.events) - rs.MaxEvents; over > 0 {
		width := max(rs.Retention.Milliseconds()/numBuckets, 1)
		for _, old := range s.events[:over] {
			s.fold(old, width, rs.distinctCap)
		}
		s.events = slices.Delete(s.events, 0, over)
		i -= over
	}
	i -= s.prune(rs.Retention)
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
func (s *State) prune(retention time.Duration) int {
	horizon := s.newest - retention.Milliseconds()
	n := 0
	for n < len(s.events) && s.events[n].ts <= horizon {
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

// The binary encoding of State. It is the value of the detector's compacted table, written once per payment,
// so it is compact: varints, timestamps delta-coded, only non-empty field hashes.
// Version 2 added the profile (baseline, home country, last location, cooldowns). Version 3 codes every
// timestamp as a difference from the newest event's (a byte or two instead of six), leaves out the coordinates of
// a last location that is its country's centre (the decoder looks them up again), and keeps the country and time
// of a last location without coordinates, which version 2 dropped. Version 4 adds each exact event's record
// (for re-scoring after a late arrival) and the start of each cooldown. Earlier versions still decode.
const stateVersion = 4

// Tags of the last location in version 3.
const (
	locNone     = 0
	locCentroid = 1 // ok, at the country's centre: no coordinates stored
	locExact    = 2 // ok, coordinates from the payment
	locCountry  = 3 // a country with no known centre: no coordinates
)

var errCorrupt = errors.New("corrupt state")

// MarshalBinary encodes the state, into one allocation.
func (s *State) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, s.encodedBound())
	b = append(b, stateVersion)
	b = binary.AppendVarint(b, s.newest)
	b = binary.AppendVarint(b, s.Touched-s.newest)
	b = binary.AppendUvarint(b, uint64(len(s.events)))
	prev := s.newest
	for _, e := range s.events {
		b = binary.AppendVarint(b, e.ts-prev)
		prev = e.ts
		b = binary.AppendUvarint(b, uint64(e.amount))
		b = binary.LittleEndian.AppendUint16(b, e.cur)
		if e.derived {
			b = appendDerivedAttrs(b, e.attrs)
		} else {
			b = appendAttrs(b, e.attrs)
		}
		b = appendBytes(b, s.record(e))
	}
	b = binary.AppendUvarint(b, uint64(len(s.buckets)))
	for _, k := range s.buckets {
		b = binary.AppendVarint(b, k.first-s.newest)
		b = binary.AppendVarint(b, k.last-k.first)
		b = binary.AppendUvarint(b, uint64(k.count))
		b = binary.AppendUvarint(b, uint64(len(k.sums)))
		for _, c := range k.sums {
			b = binary.LittleEndian.AppendUint16(b, c.cur)
			b = binary.AppendUvarint(b, uint64(c.sum))
		}
		for _, vs := range k.attrs {
			b = binary.AppendUvarint(b, uint64(len(vs)))
			for _, v := range vs {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.seen)))
	for _, x := range s.seen {
		b = binary.LittleEndian.AppendUint64(b, x.id)
		b = binary.LittleEndian.AppendUint64(b, x.src)
		b = binary.AppendUvarint(b, uint64(len(x.alert)))
		b = append(b, x.alert...)
	}
	b = binary.LittleEndian.AppendUint16(b, s.base.cur)
	b = binary.AppendUvarint(b, uint64(s.base.n))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.base.mean))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.base.m2))
	b = appendString(b, s.home)
	switch l := &s.last; {
	case l.ok && l.exact:
		b = binary.AppendVarint(append(b, locExact), l.ts-s.newest)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(l.lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(l.lon))
		b = appendString(b, l.country)
	case l.ok:
		b = binary.AppendVarint(append(b, locCentroid), l.ts-s.newest)
		b = appendString(b, l.country)
	case l.country != "":
		b = binary.AppendVarint(append(b, locCountry), l.ts-s.newest)
		b = appendString(b, l.country)
	default:
		b = append(b, locNone)
	}
	b = binary.AppendUvarint(b, uint64(len(s.cooldowns)))
	for _, c := range s.cooldowns {
		b = binary.LittleEndian.AppendUint32(b, c.rule)
		b = binary.AppendVarint(b, c.from-s.newest)
		b = binary.AppendVarint(b, c.until-c.from)
	}
	return b, nil
}

// encodedBound is at least the length of the state's encoding. An estimate that fell short grew the buffer once or
// twice per payment (the mean state is 168 bytes): a tenth of what the detector allocated. Any excess lives only
// until the changelog record is sent.
func (s *State) encodedBound() int {
	const v = binary.MaxVarintLen64
	n := 1 + 3*v // version, Touched, newest, events
	n += len(s.events) * (2*v + 2 + 1 + 4*int(numFields) + v)
	for i := range s.events {
		n += int(s.events[i].recLen)
	}
	n += v
	for _, k := range s.buckets {
		n += 4*v + len(k.sums)*(2+v)
		for _, vs := range k.attrs {
			n += v + 4*len(vs)
		}
	}
	n += v
	for _, x := range s.seen {
		n += 16 + v + len(x.alert)
	}
	n += 2 + v + 16 + v + len(s.home)         // baseline, home
	n += 1 + v + 16 + v + len(s.last.country) // last location
	n += v + len(s.cooldowns)*(4+2*v)
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func (d *decoder) string() string {
	return string(d.bytes(d.count(1)))
}

// derivedAttrs, in an event's attribute mask, says that the hashes of the payment's fields are not encoded but
// computed from its record; only the account's hash follows, if its bit is set.
const derivedAttrs = 0x80

func appendDerivedAttrs(b []byte, attrs [numFields]uint32) []byte {
	if h := attrs[FieldAccountID]; h != 0 {
		return binary.LittleEndian.AppendUint32(append(b, derivedAttrs|1<<FieldAccountID), h)
	}
	return append(b, derivedAttrs)
}

func appendAttrs(b []byte, attrs [numFields]uint32) []byte {
	var mask byte
	for f, h := range attrs {
		if h != 0 {
			mask |= 1 << f
		}
	}
	b = append(b, mask)
	for _, h := range attrs {
		if h != 0 {
			b = binary.LittleEndian.AppendUint32(b, h)
		}
	}
	return b
}

// decoder reads the encoding, remembering the first error so the decode code stays linear.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and checks it against what the remaining bytes can hold, so corrupt input cannot make
// the decoder allocate without bound.
func (d *decoder) count(minBytesEach int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minBytesEach) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n int) []byte {
	if n > len(d.b) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.bytes(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// location decodes a version 3 last location.
func (d *decoder) location(base int64) location {
	tag := d.bytes(1)
	if tag == nil || tag[0] == locNone {
		return location{}
	}
	l := location{ts: base + d.varint()}
	switch tag[0] {
	case locExact:
		l.lat, l.lon, l.ok, l.exact = math.Float64frombits(d.u64()), math.Float64frombits(d.u64()), true, true
		l.country = d.string()
	case locCentroid:
		l.country = d.string()
		// A centre that a later release no longer knows leaves the country without coordinates, as a payment
		// from it would.
		c, ok := centroids[l.country]
		l.lat, l.lon, l.ok = c[0], c[1], ok
	case locCountry:
		l.country = d.string()
	default:
		d.fail()
	}
	return l
}

// Reset empties s for another account's state, keeping the memory of its event and payment id lists: a detector
// recycles states once they are encoded, so that decoding an ordinary account's state allocates nothing.
func (s *State) Reset() {
	events, seen, snaps := s.events[:0], s.seen[:0], s.snaps[:0]
	clear(seen[:cap(seen)]) // let go of the alerts the previous account kept
	*s = State{events: events, seen: seen, snaps: snaps}
}

// UnmarshalBinary decodes a state written by MarshalBinary into s, reusing its lists' memory.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] < 1 || data[0] > stateVersion {
		return fmt.Errorf("%w: unknown version", errCorrupt)
	}
	version := data[0]
	events, seenIDs, snaps := s.events[:0], s.seen[:0], s.snaps[:0]
	d := decoder{b: data[1:]}
	// base is what version 3 codes timestamps against; earlier versions wrote them whole.
	var base int64
	if version >= 3 {
		s.newest = d.varint()
		*s = State{newest: s.newest, Touched: s.newest + d.varint()}
		base = s.newest
	} else {
		*s = State{Touched: d.varint(), newest: d.varint()}
	}
	s.snaps = snaps
	// Room for one more event and one more seen id: a state is decoded to take the next payment, and growing a
	// slice by one copies it into a new one twice its size.
	n := d.count(5)
	s.events = resize(events, n, n+1)
	prev := base
	for i := range s.events {
		e := &s.events[i]
		e.ts = prev + d.varint()
		prev = e.ts
		e.amount = int64(d.uvarint())
		e.cur = d.u16()
		mask := d.bytes(1)
		for f := range numFields {
			if mask != nil && mask[0]&(1<<f) != 0 {
				e.attrs[f] = d.u32()
			}
		}
		if version >= 4 {
			if n := d.count(1); n > 0 {
				e.recOff, e.recLen = uint32(len(s.snaps)), uint32(n)
				s.snaps = append(s.snaps, d.bytes(n)...)
			}
			if mask != nil && mask[0]&derivedAttrs != 0 {
				e.derived = true
				if !deriveAttrs(&e.attrs, s.record(*e)) {
					d.fail()
				}
			}
		}
	}
	s.buckets = make([]bucket, d.count(5))
	for i := range s.buckets {
		k := &s.buckets[i]
		k.first = base + d.varint()
		k.last = k.first + d.varint()
		k.count = int64(d.uvarint())
		k.sums = make([]curSum, d.count(3))
		for j := range k.sums {
			k.sums[j] = curSum{cur: d.u16(), sum: int64(d.uvarint())}
		}
		for f := range k.attrs {
			if n := d.count(4); n > 0 {
				k.attrs[f] = make([]uint32, n)
				for j := range k.attrs[f] {
					k.attrs[f][j] = d.u32()
				}
			}
		}
	}
	n = d.count(17)
	s.seen = resize(seenIDs, n, max(n, min(n+1, SeenCap))) // Remember drops the oldest id at SeenCap
	for i := range s.seen {
		x := &s.seen[i]
		x.id, x.src = d.u64(), d.u64()
		if n := d.count(1); n > 0 {
			x.alert = slices.Clone(d.bytes(n))
		}
	}
	if version >= 2 {
		s.base = baseline{cur: d.u16(), n: int64(d.uvarint()), mean: math.Float64frombits(d.u64()), m2: math.Float64frombits(d.u64())}
		s.home = d.string()
		if version >= 3 {
			s.last = d.location(base)
		} else if flag := d.bytes(1); flag != nil && flag[0] != 0 {
			s.last = location{ts: d.varint(), lat: math.Float64frombits(d.u64()), lon: math.Float64frombits(d.u64()), country: d.string(), ok: true, exact: flag[0] == 2}
		}
		if n := d.count(5); n > 0 {
			s.cooldowns = make([]cooldown, n)
			for i := range s.cooldowns {
				c := &s.cooldowns[i]
				c.rule = d.u32()
				if version >= 4 {
					c.from = base + d.varint()
					c.until = c.from + d.varint()
				} else {
					// Earlier versions kept only the end: the rule stayed quiet for every payment before it.
					c.until = base + d.varint()
					c.from = c.until - 2*MaxRetention.Milliseconds()
				}
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}

// resize returns n zeroed elements in s's memory if it holds room, else in a new slice of capacity room.
func resize[E any](s []E, n, room int) []E {
	if cap(s) < room {
		return make([]E, n, room)
	}
	s = s[:n]
	clear(s)
	return s
}
