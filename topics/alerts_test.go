package topics

import (
	"encoding/json"
	"testing"
	"time"
)

// A payment that raised late alerts is re-emitted after a crash with all of them: its own alert restored with
// the redelivered payment, and the late ones whole, since they are about other payments.
func TestStoredAlertsRestoreOwnAndLateAlerts(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := Payment{ID: "p2", AccountID: "a", Amount: 100, Currency: "EUR", Timestamp: now}
	own := Alert{ID: AlertID("a", "p2"), PaymentID: "p2", AccountID: "a", Score: 60, Action: ActionReview,
		Rules: []Fired{{Name: "big", Score: 60}}, Payment: p, RulesetVersion: 3, RulesetDigest: "d", DetectedAt: now}
	ownStored, err := StoredAlert(own)
	if err != nil {
		t.Fatal(err)
	}
	earlier := Payment{ID: "p1", AccountID: "a", Amount: 50, Currency: "EUR", Timestamp: now.Add(time.Minute), MerchantID: "m"}
	late := Alert{ID: AlertID("a", "p1"), PaymentID: "p1", AccountID: "a", Score: 50, Action: ActionReview, Payment: earlier,
		RulesetVersion: 3, RulesetDigest: "d", DetectedAt: now, Late: true, RaisedBy: "p2", ChangedRules: []string{"rapid"}}
	lateEnc, _ := AlertCodec{}.Encode(late)

	for _, c := range []struct {
		name  string
		own   []byte
		wants []string // payment ids of the restored alerts
	}{
		{"own and late", ownStored, []string{"p2", "p1"}},
		{"late only", nil, []string{"p1"}},
	} {
		stored, err := StoredAlerts(c.own, [][]byte{lateEnc})
		if err != nil {
			t.Fatal(err)
		}
		all, err := RestoreAlerts(stored, p)
		if err != nil || len(all) != len(c.wants) {
			t.Fatalf("%s: restored %d alerts (%v), want %d", c.name, len(all), err, len(c.wants))
		}
		for i, b := range all {
			var a Alert
			if err := json.Unmarshal(b, &a); err != nil || a.PaymentID != c.wants[i] || a.Payment.ID != c.wants[i] {
				t.Fatalf("%s: alert %d is %s about %s (%v)", c.name, i, a.PaymentID, a.Payment.ID, err)
			}
			if a.PaymentID == "p1" && (!a.Late || a.RaisedBy != "p2" || a.ChangedRules[0] != "rapid" || a.Payment.MerchantID != "m" || a.DeliveryID() == a.ID) {
				t.Fatalf("%s: late alert restored as %+v", c.name, a)
			}
		}
	}
	// Without late alerts the stored form is StoredAlert's, which earlier releases wrote too.
	if stored, _ := StoredAlerts(ownStored, nil); string(stored) != string(ownStored) {
		t.Fatalf("stored %s, want %s", stored, ownStored)
	}
}
