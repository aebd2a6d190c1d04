// Package topics names every Kafka topic of fraudpipe, defines the events that travel on them and the codecs
// that read and write them. Processors and commands never spell a topic name themselves.
package topics

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The topics. Group tables and loops are named by goka after their group (see processors/).
const (
	// Payments carries Payment as JSON, keyed by account id. Any partitioner will do: the detector routes
	// a payment to its account's partition itself.
	Payments = "payments"
	// PaymentsDLQ carries payments the detector rejected: the original key and bytes, the reason in headers.
	PaymentsDLQ = "payments.dlq"
	// Alerts carries Alert as JSON, keyed by account id.
	Alerts = "alerts"
	// AlertsDLQ carries records of the alerts topic the notifier could not process (not an alert, a null value,
	// a failure that outlasted its retries), in the same form as PaymentsDLQ.
	AlertsDLQ = "alerts.dlq"
)

// The control topics, compacted, one partition each.
const (
	// Rules holds every ruleset version (see rules/registry), keyed "v00000042".
	Rules = "rules"
	// Settings records what a pipeline decides once and every part must agree on, such as its partitioner
	// (kafka.AgreePartitioner). Kept forever and never compacted: the first record of a key is the decision,
	// however many parts race to make it.
	Settings = "settings"
	// Lists holds list entries keyed "LIST/VALUE"; a tombstone removes the entry. The rules file declares the
	// lists; a detector adds these entries to the file-backed ones.
	Lists = "lists"
)

// HeaderControl marks a control record on the payments topic, which the detector acts on and never scores.
// Its value names the kind: ControlRuleset is a ruleset switch point (value {"ruleset_version": N}). Control
// records have no key (they are written to each partition in turn), and a detector looks for the header only on
// records without one.
const (
	HeaderControl  = "fraudpipe-control"
	ControlRuleset = "ruleset"
	// HeaderRulesetVersion carries, on a payment re-routed through the detector's loop, the ruleset version its
	// position on the payments topic selected.
	HeaderRulesetVersion = "fraudpipe-ruleset-version"
	// HeaderStage, on a loop record, says how many grouping values (device, IP…) the payment has visited, and
	// HeaderGrouped carries the outcomes of the grouped rules so far (JSON: rule name → reason).
	HeaderStage   = "fraudpipe-stage"
	HeaderGrouped = "fraudpipe-grouped"
	// HeaderArrived, on a loop record, is when the payment's first record reached Kafka (unix ms), for the
	// processing latency.
	HeaderArrived = "fraudpipe-arrived"
	// HeaderRescore marks a loop record that is no payment but a GroupedRescore of package rules (JSON) for the account it
	// is keyed by: a late payment of a grouping value raised the grouped outcomes of an earlier-scored payment.
	HeaderRescore = "fraudpipe-rescore"
)

// ListKey is the key of a list entry on the lists topic.
func ListKey(list, value string) string { return list + "/" + value }

// Headers of dead-lettered records. The value and key are the original record's, untouched unless they are too
// large for the dead-letter topic: then they are cut short and the original size and digest travel in headers.
// The original record's own headers are not copied (they may be what made it poison).
const (
	HeaderReason          = "fraudpipe-reason" // a short code, e.g. bad_amount (rules.Reason*, Reason* below)
	HeaderError           = "fraudpipe-error"  // the full message, naming the field (cut at 1 KiB)
	HeaderSourceTopic     = "fraudpipe-source-topic"
	HeaderSourcePartition = "fraudpipe-source-partition"
	HeaderSourceOffset    = "fraudpipe-source-offset"
	// HeaderOriginalSize and HeaderOriginalSHA256 (hex) describe the original value when the dead letter carries
	// only its beginning; HeaderOriginalKeySize likewise for a key cut short. Absent when nothing was cut.
	HeaderOriginalSize    = "fraudpipe-original-size"
	HeaderOriginalSHA256  = "fraudpipe-original-sha256"
	HeaderOriginalKeySize = "fraudpipe-original-key-size"
	// HeaderAttempts says how often the record was tried before it was dead-lettered (reason retries_exhausted).
	HeaderAttempts = "fraudpipe-attempts"
)

// Reasons any processor dead-letters a record for, besides the payment reasons of the rules package.
const (
	ReasonNullValue        = "null_value"        // a record without a value (a tombstone on a stream)
	ReasonHeaderBomb       = "header_bomb"       // more headers, or more header bytes, than any producer of ours sends
	ReasonPanic            = "panic"             // processing the record panicked (a decoder's bug the record triggers)
	ReasonBadLoopRecord    = "bad_loop_record"   // a record on a loop topic whose routing headers do not parse
	ReasonNotAlert         = "not_alert"         // a record on the alerts topic that is not an alert
	ReasonBadAnswer        = "bad_answer"        // a record on customer-answers that is not a valid answer for its key
	ReasonRetriesExhausted = "retries_exhausted" // failed on every attempt (policy skip); the error header says why
)

// Alert is a payment the detector found suspicious.
type Alert struct {
	// ID is derived from account and payment id, so the same payment always yields the same alert id and
	// downstream consumers can drop the duplicates that at-least-once delivery brings.
	ID        string  `json:"id"`
	PaymentID string  `json:"payment_id"`
	AccountID string  `json:"account_id"`
	Score     int     `json:"score"`  // 0–100
	Action    Action  `json:"action"` // review | block
	Rules     []Fired `json:"rules"`
	Payment   Payment `json:"payment"`
	// RulesetVersion is the version on the rules topic that scored the payment (0: rules from a file only), and
	// RulesetDigest identifies that ruleset's content.
	RulesetVersion int       `json:"ruleset_version"`
	RulesetDigest  string    `json:"ruleset_digest"`
	DetectedAt     time.Time `json:"detected_at"`
	// Late marks an alert raised after the fact: a payment stamped earlier but arrived later (RaisedBy) entered
	// this payment's windows, which now fire ChangedRules. The payment was processed long before: a late block
	// can no longer stop it. The id stays the payment's, so the newest alert per id is the payment's outcome.
	Late         bool     `json:"late,omitempty"`
	RaisedBy     string   `json:"raised_by,omitempty"`
	ChangedRules []string `json:"changed_rules,omitempty"`
	// Recent are the account's payments before this one that the detector still held exactly when it alerted,
	// newest first (at most RecentPayments), with the score and action each got: the history an analyst reads
	// the alert against. Absent on late alerts and on an alert sent again after a crash.
	Recent []RecentPayment `json:"recent,omitempty"`
}

// RecentPayments bounds Alert.Recent.
const RecentPayments = 10

// RecentPayment is one of an account's earlier payments as the detector keeps it: amounts, place and time exact,
// the fields the rules count, and the outcome it got.
type RecentPayment struct {
	Payment
	Score  int    `json:"score"`
	Action Action `json:"action,omitempty"`
}

// DeliveryID identifies what a customer is told about an alert: its id, and for an alert raised after the fact
// its action too. A late escalation is then delivered once, although the first alert for the same payment was
// delivered under the same id.
func (a *Alert) DeliveryID() string {
	if !a.Late {
		return a.ID
	}
	return a.ID + "-late-" + string(a.Action)
}

// AlertID is the stable id of the alert for a payment.
func AlertID(accountID, paymentID string) string {
	sum := sha256.Sum256([]byte(accountID + "\x00" + paymentID))
	return "alert_" + hex.EncodeToString(sum[:12])
}

// StoredAlert is an alert as the detector keeps it for re-emission: without its payment, which the redelivered
// record carries anyway, so that an account's state can hold many.
func StoredAlert(a Alert) ([]byte, error) {
	return json.Marshal(struct {
		Alert
		Payment *struct{} `json:"payment,omitempty"`
		Recent  *struct{} `json:"recent,omitempty"` // the state holds those payments itself
	}{Alert: a})
}

// StoredAlerts is what the detector keeps for re-emission of a payment that raised late alerts: its own alert
// (nil if none) as StoredAlert keeps it, and the late alerts whole, since the redelivered record carries only
// the payment that raised them.
func StoredAlerts(own []byte, late [][]byte) ([]byte, error) {
	if len(late) == 0 {
		return own, nil
	}
	all := make([]json.RawMessage, 0, 1+len(late))
	if own == nil {
		own = []byte("null")
	}
	all = append(all, own)
	for _, l := range late {
		all = append(all, l)
	}
	return json.Marshal(all)
}

// RestoreAlerts turns what StoredAlerts (or StoredAlert) kept back into the alerts first emitted, encoded.
func RestoreAlerts(stored []byte, p Payment) ([][]byte, error) {
	if len(stored) == 0 || stored[0] != '[' {
		a, err := RestoreAlert(stored, p)
		if err != nil {
			return nil, err
		}
		return [][]byte{a}, nil
	}
	var all []json.RawMessage
	if err := json.Unmarshal(stored, &all); err != nil || len(all) == 0 {
		return nil, fmt.Errorf("decode stored alerts: %w", err)
	}
	var out [][]byte
	if string(all[0]) != "null" {
		a, err := RestoreAlert(all[0], p)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	for _, l := range all[1:] {
		out = append(out, l)
	}
	return out, nil
}

// StoredOwnAlert returns the payment's own alert from what StoredAlerts (or StoredAlert) kept, or nil if it had
// none.
func StoredOwnAlert(stored []byte) (*Alert, error) {
	own := stored
	if len(stored) > 0 && stored[0] == '[' {
		var all []json.RawMessage
		if err := json.Unmarshal(stored, &all); err != nil || len(all) == 0 {
			return nil, fmt.Errorf("decode stored alerts: %w", err)
		}
		own = all[0]
	}
	if len(own) == 0 || string(own) == "null" {
		return nil, nil
	}
	var a Alert
	if err := json.Unmarshal(own, &a); err != nil {
		return nil, fmt.Errorf("decode stored alert: %w", err)
	}
	return &a, nil
}

// RestoreAlert turns a stored alert back into the alert that was first emitted, payment included.
func RestoreAlert(stored []byte, p Payment) ([]byte, error) {
	var a Alert
	if err := json.Unmarshal(stored, &a); err != nil {
		return nil, fmt.Errorf("decode stored alert: %w", err)
	}
	a.Payment = p
	return json.Marshal(a)
}

// Raw passes bytes through. Inputs that may hold anything (payments from arbitrary producers) are read raw so
// that a malformed record reaches the callback, and the dead-letter topic, instead of failing the codec.
type Raw struct{}

// Encode implements goka.Codec.
func (Raw) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: want []byte, got %T", v)
	}
	return b, nil
}

// Decode implements goka.Codec.
func (Raw) Decode(b []byte) (any, error) { return b, nil }

// AlertCodec encodes Alert as JSON. It also accepts already encoded bytes, which the detector uses to re-emit a
// stored alert unchanged.
type AlertCodec struct{}

// Encode implements goka.Codec.
func (AlertCodec) Encode(v any) ([]byte, error) {
	switch a := v.(type) {
	case []byte:
		return a, nil
	case *Alert:
		return json.Marshal(a)
	case Alert:
		return json.Marshal(a)
	}
	return nil, fmt.Errorf("alert codec: want Alert, got %T", v)
}

// Decode implements goka.Codec.
func (AlertCodec) Decode(b []byte) (any, error) {
	var a Alert
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode alert: %w", err)
	}
	return &a, nil
}

// IDsCodec encodes a list of ids (the notifier's recently delivered alert ids) one per line.
type IDsCodec struct{}

// Encode implements goka.Codec.
func (IDsCodec) Encode(v any) ([]byte, error) {
	ids, ok := v.([]string)
	if !ok {
		return nil, fmt.Errorf("ids codec: want []string, got %T", v)
	}
	return []byte(strings.Join(ids, "\n")), nil
}

// Decode implements goka.Codec.
func (IDsCodec) Decode(b []byte) (any, error) {
	if len(b) == 0 {
		return []string{}, nil
	}
	return strings.Split(string(b), "\n"), nil
}
