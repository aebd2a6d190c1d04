package topics

import (
	"encoding/json"
	"fmt"
	"time"
)

// Topics of the notifier.
const (
	// Customers carries Customer as JSON, keyed by account id, compacted: the latest record per account is the
	// customer's contact data; a tombstone (null value) removes the customer.
	Customers = "customers"
	// NotificationsDLQ carries deliveries that failed for good (permanent provider errors, retry budget spent),
	// as DeadDelivery JSON.
	NotificationsDLQ = "notifications.dlq"
)

// Customer is the contact data and preferences of an account holder.
type Customer struct {
	AccountID string             `json:"account_id"`
	Name      string             `json:"name,omitempty"`
	Email     string             `json:"email,omitempty"`
	Phone     string             `json:"phone,omitempty"` // E.164, e.g. +4915112345678
	Push      []PushSubscription `json:"push,omitempty"`
	// Channels switches channels off for this customer (absent means on). Block alerts go to every channel the
	// routing asks for regardless: a customer cannot opt out of being told a payment was blocked.
	Channels   map[string]bool `json:"channels,omitempty"`
	Locale     string          `json:"locale,omitempty"` // e.g. de-DE; passed to templates
	QuietHours *QuietHours     `json:"quiet_hours,omitempty"`
}

// PushSubscription is a Web Push subscription as a browser's PushSubscription.toJSON() gives it.
type PushSubscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// QuietHours is a daily period, in the customer's time zone, in which review alerts wait. Start may be later
// than End (22:00–07:00 spans midnight).
type QuietHours struct {
	Start    string `json:"start"` // HH:MM
	End      string `json:"end"`   // HH:MM
	TimeZone string `json:"tz"`    // IANA, e.g. Europe/Berlin; default UTC
}

// ParseCustomer decodes and checks a customer record.
func ParseCustomer(b []byte) (*Customer, error) {
	var c Customer
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("customer: %w", err)
	}
	if c.AccountID == "" {
		return nil, fmt.Errorf("customer: account_id is required")
	}
	if c.QuietHours != nil {
		if _, _, err := c.QuietHours.Window(time.Now()); err != nil {
			return nil, fmt.Errorf("customer %s: %w", c.AccountID, err)
		}
	}
	return &c, nil
}

// Wants reports whether the customer has not switched the channel off.
func (c *Customer) Wants(channel string) bool {
	on, set := c.Channels[channel]
	return !set || on
}

// Window returns, for the instant at, whether it falls in quiet hours and when they end.
func (q *QuietHours) Window(at time.Time) (quiet bool, end time.Time, err error) {
	loc := time.UTC
	if q.TimeZone != "" {
		if loc, err = time.LoadLocation(q.TimeZone); err != nil {
			return false, time.Time{}, fmt.Errorf("quiet hours: time zone %q: %w", q.TimeZone, err)
		}
	}
	s, err1 := time.Parse("15:04", q.Start)
	e, err2 := time.Parse("15:04", q.End)
	if err1 != nil || err2 != nil {
		return false, time.Time{}, fmt.Errorf("quiet hours: %q–%q: want HH:MM", q.Start, q.End)
	}
	local := at.In(loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	start := day.Add(time.Duration(s.Hour())*time.Hour + time.Duration(s.Minute())*time.Minute)
	stop := day.Add(time.Duration(e.Hour())*time.Hour + time.Duration(e.Minute())*time.Minute)
	switch {
	case !start.Before(stop) && local.Before(stop): // spans midnight, we are in the morning part
		return true, stop, nil
	case !start.Before(stop) && !local.Before(start): // spans midnight, we are in the evening part
		return true, stop.AddDate(0, 0, 1), nil
	case local.Before(stop) && !local.Before(start):
		return true, stop, nil
	}
	return false, time.Time{}, nil
}

// DeadDelivery is a notification that could not be delivered.
type DeadDelivery struct {
	AlertID   string    `json:"alert_id"`
	AccountID string    `json:"account_id"`
	Channel   string    `json:"channel"`
	Recipient string    `json:"recipient"` // masked
	Reason    string    `json:"reason"`
	Attempts  int       `json:"attempts"`
	At        time.Time `json:"at"`
	Alert     *Alert    `json:"alert"`
}
