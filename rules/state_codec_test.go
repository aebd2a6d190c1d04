package rules

import (
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"
)

// codecRules is the ruleset codecStates are scored with.
func codecRules(t *testing.T) *Ruleset {
	t.Helper()
	return mustParse(t, `thresholds: { review: 50, block: 80 }
state: { max_events: 16, lateness: 0 }
rules:
  - { name: d, type: distinct, field: ip, window: 1h, limit: 3, score: 50 }
  - { name: big, type: amount, limit: 30, currency: EUR, score: 60, cooldown: 1h }
  - { name: far, type: travel, max_speed_kmh: 900, score: 50 }
`)
}

// codecStates are states that use every part of the encoding: exact events and folded buckets with distinct
// values, remembered payments with alerts, a baseline, home country, cooldowns, and each kind of last location
// (a country's centre, exact coordinates, a country with no known centre).
func codecStates(t *testing.T) []*State {
	t.Helper()
	rs := codecRules(t)
	var out []*State
	for k, countries := range [][]string{{"DE", "FR"}, {"", ""}, {"DE", "XX"}} {
		st := &State{Touched: t0.UnixMilli() + 5000}
		for i := range 40 {
			p := pay(fmt.Sprint(k, "-", i), time.Duration(i)*time.Minute, int64(i+1), []string{"EUR", "USD", "JPY"}[i%3])
			p.IP = fmt.Sprint("10.0.0.", i%5)
			p.Country = countries[i%2]
			if k == 1 {
				lat, lon := 52.52+float64(i)/100, 13.405-float64(i)/100
				p.Lat, p.Lon = &lat, &lon
			}
			if k == 2 && i == 39 {
				p.Country = "XX" // no centre known: the last location keeps only the country and time
			}
			rs.Evaluate(st, &p)
			st.Remember(p.ID, uint64(i), []byte(fmt.Sprint("alert ", i)))
		}
		out = append(out, st)
	}
	if out[2].last.ok || out[2].last.country != "XX" || !out[1].last.exact || !out[0].last.ok || out[0].last.exact || len(out[0].cooldowns) == 0 || len(out[0].buckets) == 0 {
		t.Fatalf("the states do not cover the encoding: %+v", out)
	}
	return out
}

// canon returns st with its records packed in event order, so that states with the same content compare equal
// however their records were written.
func canon(st *State) *State {
	c := *st
	c.events = slices.Clone(st.events)
	c.snaps, c.compactAt = nil, 0
	for i := range c.events {
		rec := st.record(st.events[i])
		c.events[i].recOff = uint32(len(c.snaps))
		c.snaps = append(c.snaps, rec...)
	}
	if len(c.snaps) == 0 {
		c.snaps = nil
	}
	return &c
}

// withoutRecords is st as a version before 4 keeps it: no records, and cooldowns that cover every payment before
// their end.
func withoutRecords(st *State) *State {
	c := canon(st)
	for i := range c.events {
		c.events[i].recOff, c.events[i].recLen, c.events[i].derived, c.events[i].inBase = 0, 0, false, true
	}
	c.snaps = nil
	c.cooldowns = slices.Clone(c.cooldowns)
	for i := range c.cooldowns {
		c.cooldowns[i].from = c.cooldowns[i].until - 2*MaxRetention.Milliseconds()
	}
	return c
}

func TestStateCodecRoundTripsEveryPart(t *testing.T) {
	for i, st := range codecStates(t) {
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if !reflect.DeepEqual(canon(&got), canon(st)) {
			t.Fatalf("state %d: round trip differs:\n got %+v\nwant %+v", i, got, *st)
		}
		if n := st.encodedBound(); len(b) > n {
			t.Fatalf("state %d: encoding is %d bytes, over its bound of %d", i, len(b), n)
		}
		for j := range b {
			var s State
			_ = s.UnmarshalBinary(b[:j]) // truncated input must fail cleanly, never panic
		}
	}
}

// States written by earlier releases (testdata/state-v2-*.bin and -v3-*.bin, encoded from codecStates by those
// versions) must decode to the same state after an upgrade, or a restarted detector would lose its accounts'
// windows. They have no records: their payments count in every window but are not re-scored by a late arrival.
func TestStateDecodesEarlierVersions(t *testing.T) {
	for _, version := range []byte{2, 3} {
		for i, st := range codecStates(t) {
			name := fmt.Sprintf("testdata/state-v%d-%d.bin", version, i)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != version {
				t.Fatalf("%s is version %d", name, b[0])
			}
			want := withoutRecords(st)
			if version == 2 && !want.last.ok {
				want.last = location{} // version 2 did not keep a last location without coordinates
			}
			var got State
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// Earlier versions folded every payment into the baseline as it arrived: the same as this version's
			// profile of all the payments, for payments that arrived in order.
			rs := codecRules(t)
			end := st.newest + 1
			if got.base != rs.baselineBefore(st, end) || got.homeBefore(end) != st.homeBefore(end) {
				t.Fatalf("%s: baseline %+v home %q, want %+v and %q", name, got.base, got.homeBefore(end), rs.baselineBefore(st, end), st.homeBefore(end))
			}
			want.base, want.home = got.base, got.home
			if !reflect.DeepEqual(canon(&got), want) {
				t.Fatalf("%s decodes differently:\n got %+v\nwant %+v", name, got, *want)
			}
		}
	}
}

// A payment from a country without a known centre leaves the account's last country for expression rules
// (account.last_country); it has to survive the table, which stores every state encoded.
func TestLastCountryWithoutCentreSurvivesTheCodec(t *testing.T) {
	st := codecStates(t)[2]
	b, _ := st.MarshalBinary()
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.last.country != "XX" || got.last.ts != st.last.ts || got.last.ok {
		t.Fatalf("last location %+v, want country XX at %d without coordinates", got.last, st.last.ts)
	}
}

// The detector decodes states into recycled ones: a state decoded into one that held another account must equal
// one decoded afresh, and a reset one must score like a new one, whatever the previous account held (a truncated
// decode included).
func TestReusedStateKeepsNothingOfThePreviousAccount(t *testing.T) {
	states := codecStates(t)
	enc := make([][]byte, len(states))
	for i, st := range states {
		enc[i], _ = st.MarshalBinary()
	}
	emptyEnc, _ := (&State{}).MarshalBinary()
	for i := range states {
		for j := range states {
			var r State
			if err := r.UnmarshalBinary(enc[i]); err != nil {
				t.Fatal(err)
			}
			_ = r.UnmarshalBinary(enc[i][:len(enc[i])/2]) // a failed decode leaves whatever it got to
			if err := r.UnmarshalBinary(enc[j]); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(canon(&r), canon(states[j])) {
				t.Fatalf("state %d decoded into one that held state %d:\n got %+v\nwant %+v", j, i, r, *states[j])
			}
		}
		var r State
		_ = r.UnmarshalBinary(enc[i])
		r.Reset()
		if got, _ := r.MarshalBinary(); string(got) != string(emptyEnc) {
			t.Fatalf("state %d reset encodes as %x, an empty one as %x", i, got, emptyEnc)
		}
		for k := range r.seen[:cap(r.seen)] {
			if r.seen[:cap(r.seen)][k].alert != nil {
				t.Fatalf("state %d reset still holds the alert of a payment id", i)
			}
		}
	}
}

// A record whose lengths are corrupt (a length of 2^63 read as a negative int) is an error, not a panic.
func TestCorruptRecordLengthsDoNotPanic(t *testing.T) {
	rec := binary.AppendUvarint(nil, 1<<63)
	var attrs [numFields]uint32
	if deriveAttrs(&attrs, rec) {
		t.Fatal("a corrupt record was taken")
	}
	if _, ok := parseRecord(rec); ok {
		t.Fatal("a corrupt record was parsed")
	}
}
