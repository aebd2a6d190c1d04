package topics

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Decisions carries a Decision for every payment the detector scores, clean ones included, keyed by account id:
// a payment service can follow it instead of calling the decision API. A payment is scored once; a redelivery or
// a producer's retry of it brings its outcome again, marked Replayed.
const Decisions = "decisions"

// HeaderReplyTo, on a payment, names the decision API instance waiting for its decision; the detector copies it
// onto the decision (and through its loop), so that whichever API instance reads the decision can pass it on.
// The API's relay reads decisions by their headers and skips those without one, unparsed.
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
	// Late marks a payment's new decision after the fact: a payment stamped earlier but arrived later (RaisedBy)
	// entered its windows and made it stronger (it also came as a late alert). The newest decision per payment is
	// its outcome, whatever order the payments arrived in; the decision API answers the first.
	Late     bool   `json:"late,omitempty"`
	RaisedBy string `json:"raised_by,omitempty"`
	// Replayed marks a decision sent again for a payment decided before (a redelivery after a crash, or the same
	// payment id produced again), never scored again: its outcome and score are what the detector now holds for
	// the payment, the first decision's or the stronger one a late payment re-scored it to (that one also came as
	// a late alert); Rules may be empty if the detector no longer keeps them. The decision API answers the first.
	Replayed bool `json:"replayed,omitempty"`
}

// AppendDecision appends d as JSON, as json.Marshal writes it, without reflection: the detector writes one per
// payment.
func AppendDecision(b []byte, d *Decision) []byte {
	str := func(b []byte, s string) []byte {
		b, _ = jsontext.AppendQuote(b, s) // invalid UTF-8 becomes U+FFFD, as with encoding/json
		return b
	}
	b = append(b, `{"payment_id":`...)
	b = str(b, d.PaymentID)
	b = append(b, `,"account_id":`...)
	b = str(b, d.AccountID)
	b = append(b, `,"decision":`...)
	b = str(b, string(d.Decision))
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, int64(d.Score), 10)
	b = append(b, `,"rules":[`...)
	for i, f := range d.Rules {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = str(b, f.Name)
		b = append(b, `,"score":`...)
		b = strconv.AppendInt(b, int64(f.Score), 10)
		b = append(b, `,"reason":`...)
		b = str(b, f.Reason)
		b = append(b, '}')
	}
	b = append(b, `],"ruleset_version":`...)
	b = strconv.AppendInt(b, int64(d.RulesetVersion), 10)
	if d.RulesetDigest != "" {
		b = append(b, `,"ruleset_digest":`...)
		b = str(b, d.RulesetDigest)
	}
	if !d.ArrivedAt.IsZero() {
		b = append(b, `,"arrived_at":"`...)
		b = append(d.ArrivedAt.AppendFormat(b, time.RFC3339Nano), '"')
	}
	if !d.DecidedAt.IsZero() {
		b = append(b, `,"decided_at":"`...)
		b = append(d.DecidedAt.AppendFormat(b, time.RFC3339Nano), '"')
	}
	if d.Late {
		b = append(b, `,"late":true,"raised_by":`...)
		b = str(b, d.RaisedBy)
	}
	if d.Replayed {
		b = append(b, `,"replayed":true`...)
	}
	return append(b, '}')
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
