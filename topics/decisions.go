package topics

import (
	"encoding/json"
	"fmt"
	"time"
)

// Decisions carries a Decision for every payment the detector scores, clean ones included, keyed by account id:
// a payment service can follow it instead of calling the decision API. A payment is decided once; a redelivery or
// a producer's retry of it brings the same outcome again, marked Replayed.
const Decisions = "decisions"

// DecisionReplies carries again the decisions of payments that name a reply address (HeaderReplyTo), those posted
// to the decision API, keyed by account id: the API's relay reads these only, not every payment's decision.
const DecisionReplies = "decision-replies"

// HeaderReplyTo, on a payment, names the decision API instance waiting for its decision; the detector copies it
// onto the decision (and through its loop), so that whichever API instance reads the decision can pass it on.
const HeaderReplyTo = "fraudpipe-reply-to"

// Outcome is what a payment service should do with a payment.
type Outcome string

// The outcomes: Approve for a payment below the review threshold, otherwise the alert's action.
const (
	OutcomeApprove Outcome = "approve"
	OutcomeReview  Outcome = "review"
	OutcomeBlock   Outcome = "block"
)

// OutcomeOf maps a detector action to the decision's outcome.
func OutcomeOf(a Action) Outcome {
	switch a {
	case ActionReview:
		return OutcomeReview
	case ActionBlock:
		return OutcomeBlock
	}
	return OutcomeApprove
}

// Decision is the detector's verdict on one payment.
type Decision struct {
	PaymentID string  `json:"payment_id"`
	AccountID string  `json:"account_id"`
	Decision  Outcome `json:"decision"`
	Score     int     `json:"score"`
	Rules     []Fired `json:"rules"`
	// RulesetVersion and RulesetDigest identify the ruleset that scored the payment, as on alerts.
	RulesetVersion int    `json:"ruleset_version"`
	RulesetDigest  string `json:"ruleset_digest,omitempty"`
	// ArrivedAt is when the payment reached Kafka, DecidedAt when the detector scored it.
	ArrivedAt time.Time `json:"arrived_at,omitzero"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Replayed marks a decision sent again for a payment decided before (a redelivery after a crash, or the same
	// payment id produced again): its outcome and score are the first decision's; Rules may be empty if the
	// detector no longer keeps them.
	Replayed bool `json:"replayed,omitempty"`
}

// DecisionCodec encodes Decision as JSON.
type DecisionCodec struct{}

// Encode implements goka.Codec.
func (DecisionCodec) Encode(v any) ([]byte, error) {
	switch d := v.(type) {
	case []byte:
		return d, nil
	case *Decision:
		return json.Marshal(d)
	case Decision:
		return json.Marshal(d)
	}
	return nil, fmt.Errorf("decision codec: want Decision, got %T", v)
}

// Decode implements goka.Codec.
func (DecisionCodec) Decode(b []byte) (any, error) {
	var d Decision
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode decision: %w", err)
	}
	return &d, nil
}
