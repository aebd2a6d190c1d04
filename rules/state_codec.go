package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

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
		e.inBase = version < 4
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
