package topics

import "time"

// Payment is one payment as it travels on the payments topic. Amount is in the currency's minor units.
type Payment struct {
	ID               string    `json:"id"`
	AccountID        string    `json:"account_id"`
	Amount           int64     `json:"amount"`
	Currency         string    `json:"currency"`
	Timestamp        time.Time `json:"timestamp"`
	MerchantID       string    `json:"merchant_id,omitempty"`
	MerchantCategory string    `json:"merchant_category,omitempty"`
	Country          string    `json:"country,omitempty"`
	CardID           string    `json:"card_id,omitempty"`
	DeviceID         string    `json:"device_id,omitempty"`
	IP               string    `json:"ip,omitempty"`
	// Lat and Lon locate the payment (decimal degrees), for impossible-travel rules. Optional, both or neither;
	// without them the country's centroid stands in.
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
}

// Action is what a scored payment calls for.
type Action string

// The actions. A payment below the review threshold has ActionNone and produces no alert.
const (
	ActionNone   Action = ""
	ActionReview Action = "review"
	ActionBlock  Action = "block"
)

// Fired is one rule that fired, with a reason a person can read.
type Fired struct {
	Name   string `json:"name"`
	Score  int    `json:"score"`
	Reason string `json:"reason"`
}
