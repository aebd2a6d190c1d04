package detector

import (
	"fmt"
	"sync"
	"time"

	"github.com/fraudpipe/fraudpipe/rules"
	"github.com/fraudpipe/fraudpipe/topics"
)

// NewAlert builds the alert for a payment that reached the review threshold.
func NewAlert(p rules.Payment, d rules.Decision, rs *rules.Ruleset, now time.Time) topics.Alert {
	return topics.Alert{
		ID: topics.AlertID(p.AccountID, p.ID), PaymentID: p.ID, AccountID: p.AccountID,
		Score: d.Score, Action: d.Action, Rules: d.Fired, Payment: p,
		RulesetVersion: rs.Number, RulesetDigest: rs.Digest, DetectedAt: now.UTC(),
	}
}

// NewLateAlert builds the alert for a payment that a later arrival (raisedBy) re-scored.
func NewLateAlert(l rules.LateDecision, raisedBy string, rs *rules.Ruleset, now time.Time) topics.Alert {
	a := NewAlert(l.Payment, l.Decision, rs, now)
	a.Late, a.RaisedBy, a.ChangedRules = true, raisedBy, l.Changed
	return a
}

// StateCodec encodes the detector's per-account rules.State in its compact binary form.
type StateCodec struct{}

// Encode implements goka.Codec.
func (StateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*rules.State)
	if !ok {
		return nil, fmt.Errorf("state codec: want *rules.State, got %T", v)
	}
	return s.MarshalBinary()
}

// Decode implements goka.Codec. The state comes from the states given back with recycleState when there are any.
func (StateCodec) Decode(b []byte) (any, error) {
	s := states.Get().(*rules.State)
	if err := s.UnmarshalBinary(b); err != nil {
		states.Put(s)
		return nil, fmt.Errorf("decode account state: %w", err)
	}
	return s, nil
}

// newState returns an empty account state, a recycled one when there is one.
func newState() *rules.State {
	s := states.Get().(*rules.State)
	s.Reset()
	return s
}

// recycleState gives back a state from Decode or newState that nothing refers to any more (goka encodes a value
// when it is set and keeps only the bytes), for the next payment to decode into: its event and id lists are
// allocated once instead of on every payment.
func recycleState(s *rules.State) { states.Put(s) }

var states = sync.Pool{New: func() any { return new(rules.State) }}
