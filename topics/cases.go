package topics

import (
	"fmt"
	"time"
)

// The case topics. Cases group an account's alerts for an analyst; their history is a sequence of events.
const (
	// Cases holds every case event, keyed CaseEventKey (case id / zero-padded sequence number): compaction keeps
	// each event, since no two share a key, so the topic is the cases' whole history.
	Cases = "cases"
	// CaseCommands holds analysts' actions on cases (CaseCommand), key = account id, duplicates included.
	CaseCommands = "case-commands"
	// CasesDLQ holds the records of the cases group's inputs (alerts, customer-answers, case-commands) that it
	// cannot read, with the source topic in headers.
	CasesDLQ = "cases.dlq"
)

// ReasonBadCaseCommand dead-letters a record on case-commands that is not a valid command for its key.
const ReasonBadCaseCommand = "bad_case_command"

// CaseEventType names what happened to a case.
type CaseEventType string

// The case events.
const (
	CaseOpened            CaseEventType = "opened"             // the account's first alert since its last case closed
	CaseAlertAdded        CaseEventType = "alert-added"        // another alert of the account while its case is open
	CaseAssigned          CaseEventType = "assigned"           // an analyst took the case (or gave it to someone)
	CaseCustomerConfirmed CaseEventType = "customer-confirmed" // the customer said "it was me" to an alert of the case
	CaseCustomerDenied    CaseEventType = "customer-denied"    // the customer said "it wasn't me"
	CaseVerdictGiven      CaseEventType = "verdict"            // an analyst's verdict, with a note
	CaseClosed            CaseEventType = "closed"             // no more work on the case; the next alert opens a new one
	CaseReopened          CaseEventType = "reopened"           // a closed case taken up again
)

// CaseVerdict is an analyst's finding on a case.
type CaseVerdict string

// The verdicts. Fraud and legitimate also label the case's payments (Labels, source analyst).
const (
	CaseFraud      CaseVerdict = "fraud"
	CaseLegitimate CaseVerdict = "legitimate"
	CaseUnsure     CaseVerdict = "unsure"
)

// CaseEvent is one event in a case's history. By is who caused it: an analyst's user name, "customer" or
// "pipeline" (alerts).
type CaseEvent struct {
	CaseID    string        `json:"case_id"`
	AccountID string        `json:"account_id"`
	Seq       int           `json:"seq"` // 1, 2, … within the case
	Type      CaseEventType `json:"type"`
	At        time.Time     `json:"at"`
	By        string        `json:"by"`
	// Alert is the alert of opened and alert-added (on the topic; a case's stored history keeps its id only).
	Alert   *Alert `json:"alert,omitempty"`
	AlertID string `json:"alert_id,omitempty"`
	// PaymentID is the payment a customer answered about.
	PaymentID string      `json:"payment_id,omitempty"`
	Assignee  string      `json:"assignee,omitempty"`
	Verdict   CaseVerdict `json:"verdict,omitempty"`
	Note      string      `json:"note,omitempty"`
	// CommandID is the analyst's command that caused the event.
	CommandID string `json:"command_id,omitempty"`
	// Cause is the input that caused the event: "alert:<delivery id>", "answer:<alert id>" or "command:<id>".
	Cause string `json:"cause,omitempty"`
}

// CaseEventKey is an event's record key: the case id and the sequence number, zero-padded so that keys sort in
// the order of the history.
func CaseEventKey(caseID string, seq int) string { return fmt.Sprintf("%s/%08d", caseID, seq) }

// CaseCommandType names an analyst's action.
type CaseCommandType string

// The commands the console sends.
const (
	CommandAssign  CaseCommandType = "assign"
	CommandVerdict CaseCommandType = "verdict"
	CommandClose   CaseCommandType = "close"
	CommandReopen  CaseCommandType = "reopen"
)

// CaseCommand is an analyst's action on a case. ID is chosen by the console once per action (a form's submission),
// so that a retried or redelivered command takes effect once.
type CaseCommand struct {
	ID        string          `json:"id"`
	Type      CaseCommandType `json:"type"`
	AccountID string          `json:"account_id"`
	CaseID    string          `json:"case_id"`
	By        string          `json:"by"`
	At        time.Time       `json:"at"`
	Assignee  string          `json:"assignee,omitempty"` // assign
	Verdict   CaseVerdict     `json:"verdict,omitempty"`  // verdict
	Note      string          `json:"note,omitempty"`     // verdict, close, reopen
}
